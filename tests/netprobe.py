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
