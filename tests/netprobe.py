"""Tiny network probes run inside test namespaces and containers (python3 -c SCRIPT ARGS), so every network test
asks "does this TCP connection open?" the same way."""

# LISTEN PORT...: accept (and close) connections on every address at each port; prints "ready", lives an hour.
LISTEN = """
import socket, sys, threading, time
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen()
    threading.Thread(target=lambda s=s: [s.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""

# CONNECT HOST:PORT...: prints a JSON object, per target "open" or the error's class (ConnectionRefusedError, ...).
CONNECT = """
import json, socket, sys
result = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close(); result[target] = "open"
    except OSError as exc:
        result[target] = type(exc).__name__
print(json.dumps(result))
"""

# ECHO PORT...: like LISTEN, but each connection is held open and echoes what it receives.
ECHO = """
import socket, sys, threading, time
def serve(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen()
    threading.Thread(target=lambda s=s: [threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start() for _ in iter(int, 1)], daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""

# HOLD HOST:PORT: opens a connection and checks it echoes ("open"), then at each line on stdin checks it again and
# prints "alive" or the error's class: does a connection opened earlier survive what changed since?
HOLD = """
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
conn = socket.create_connection((host, int(port)), timeout=3)
conn.sendall(b"x"); print("open" if conn.recv(1) == b"x" else "mute", flush=True)
for _ in sys.stdin:
    try:
        conn.sendall(b"y"); print("alive" if conn.recv(1) == b"y" else "closed", flush=True)
    except OSError as exc:
        print(type(exc).__name__, flush=True)
"""
