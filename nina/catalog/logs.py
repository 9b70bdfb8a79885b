"""Log patterns (manual §5.3: "out of memory exceptions in logs", "other key error messages indicating service
failure"): one row per pattern, counted on every host by mtail (cloudinit/templates/base/nina-log-patterns.mtail.j2,
rendered from this table) as nina_log_pattern_lines_total{unit, pattern}; the alerts OutOfMemoryInLogs and
ServiceErrorsInLogs (nina/catalog/alerts.py) select the rows by `kind`. tests/test_log_patterns.py feeds every row's
samples to the real mtail.

The journal reaches mtail as `journalctl --output=with-unit --utc` lines ("Mon 2026-11-30 02:00:00 UTC host
unit[pid]: message"); a few services log to files instead (nginx's error log, OpenVPN's log-append), read directly.
Patterns are RE2 (mtail's syntax) and may not contain "/" (mtail's regex delimiter).
"""

from __future__ import annotations

from dataclasses import dataclass

OOM, ERROR = "oom", "error"
METRIC = "nina_log_pattern_lines_total"
# The flwr processes: SuperLink, its SuperExec, SuperNodes and theirs (researchers' apps log through the SuperExecs).
FLWR_UNITS = r"superlink\.service|superlink-superexec\.service|supernode@.+\.service|supernode-superexec@.+\.service"


@dataclass(frozen=True)
class LogPattern:
    name: str  # the `pattern` label
    kind: str  # OOM or ERROR: the alert that counts it
    regex: str  # on the message (journal) or the whole line (file)
    units: str = ""  # journal: the unit the line comes from must fully match this
    file: str = ""  # or a log file (glob) whose lines are counted under `file_unit`
    file_unit: str = ""
    unit_in_message: bool = False  # the regex's group `subject` names the unit (systemd's messages about a unit)
    matches: tuple[str, ...] = ()  # sample lines it counts, as mtail reads them (journal lines: with-unit format)
    ignores: tuple[str, ...] = ()  # sample lines it must not count


def journal_line(unit: str, message: str, host: str = "h1") -> str:
    """A line of `journalctl --output=with-unit --utc`."""
    return f"Mon 2026-11-30 02:00:00 UTC {host} {unit}[1234]: {message}"


PATTERNS: tuple[LogPattern, ...] = (
    LogPattern(
        "python_memory_error", OOM, r"\bMemoryError\b", units=FLWR_UNITS,
        matches=(journal_line("supernode@sn1.service", "MemoryError: Unable to allocate 7.45 GiB for an array"),),
        ignores=(journal_line("nginx.service", "MemoryError"), journal_line("superlink.service", "INFO : round 3 memory ok")),
    ),
    LogPattern(
        "cuda_out_of_memory", OOM, r"CUDA out of memory|CUDA error: out of memory", units=FLWR_UNITS,
        matches=(journal_line("supernode-superexec@sn1.service", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),),
    ),
    LogPattern(
        "torch_out_of_memory", OOM, r"torch\.(cuda\.)?OutOfMemoryError", units=FLWR_UNITS,
        matches=(journal_line("superlink-superexec.service", "torch.OutOfMemoryError: Allocation on device 0 would exceed allowed memory (out of memory)"),),
    ),
    LogPattern(
        "java_out_of_memory", OOM, r"java\.lang\.OutOfMemoryError", units=r"keycloak\.service",
        matches=(journal_line("keycloak.service", 'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space'),),
    ),
    # systemd (PID 1, init.scope) says which unit lost a process to the kernel's OOM killer (see also OomKill).
    LogPattern(
        "oom_killed", OOM, r"^(?P<subject>[^ :]+): A process of this unit has been killed by the OOM killer", units=r"init\.scope",
        unit_in_message=True,
        matches=(journal_line("init.scope", "supernode@sn1.service: A process of this unit has been killed by the OOM killer."),),
    ),
    # Keycloak's console format is "<date> <time> <LEVEL> [<logger>] (<thread>) <message>". Anchored on level and
    # logger: a failed login logs the username as typed (WARN [org.keycloak.events]), so free text must not count.
    LogPattern(
        "keycloak_fatal", ERROR, r"^\S+ \S+ (FATAL \[|ERROR \[org\.keycloak\.quarkus\.runtime\.cli\.ExecutionExceptionHandler\])",
        units=r"keycloak\.service",
        matches=(
            journal_line("keycloak.service", "2026-11-30 02:00:00,123 ERROR [org.keycloak.quarkus.runtime.cli.ExecutionExceptionHandler] (main) ERROR: Failed to start server in (production) mode"),
            journal_line("keycloak.service", "2026-11-30 02:00:00,123 FATAL [io.quarkus.runtime.Application] (main) Failed to start application"),
        ),
        ignores=(
            journal_line("keycloak.service", "2026-11-30 02:00:00,123 INFO  [io.quarkus] (main) Keycloak 26.0.5 started in 12.3s"),
            journal_line("keycloak.service", '2026-11-30 02:00:00,123 WARN  [org.keycloak.events] (executor-thread-1) type="LOGIN_ERROR", realmId="nina", error="user_not_found", username="FATAL Failed to start server"'),
        ),
    ),
    LogPattern(
        "jupyterhub_fatal", ERROR, r"^\[C \d{4}-\d\d-\d\d|Failed to start proxy|Failed to connect to proxy", units=r"jupyterhub\.service",
        matches=(journal_line("jupyterhub.service", "[C 2026-11-30 02:00:00.123 JupyterHub app:3336] Failed to start proxy"),),
        ignores=(journal_line("jupyterhub.service", "[I 2026-11-30 02:00:00.123 JupyterHub log:192] 200 GET /hub/home"),),
    ),
    # nginx: the ingress's error log, and the SuperLink's proxy (error_log stderr, into the journal).
    LogPattern(
        "nginx_fatal", ERROR, r"\[(emerg|alert|crit)\]", file="/var/log/nginx/error.log", file_unit="nginx.service",
        matches=("2026/11/30 02:00:00 [emerg] 812#812: bind() to 0.0.0.0:443 failed (98: Address already in use)",),
        ignores=("2026/11/30 02:00:00 [warn] 812#812: conflicting server name",),
    ),
    LogPattern(
        "nginx_fatal", ERROR, r"\[(emerg|alert|crit)\]", units=r"superlink-proxy\.service",
        matches=(journal_line("superlink-proxy.service", "nginx: [emerg] cannot load certificate"),),
    ),
    # The database's clients. Keycloak's pool (agroal) and Hibernate report a lost database at WARN/ERROR under their
    # own loggers; a login event carrying the same words in a username does not count (see keycloak_fatal).
    LogPattern(
        "postgres_connection_failed", ERROR,
        r"^\S+ \S+ (WARN|ERROR) +\[(io\.agroal|org\.hibernate)\S*\] .*(PSQLException|Connection to \S+ refused|password authentication failed)",
        units=r"keycloak\.service",
        matches=(journal_line("keycloak.service", "2026-11-30 02:00:00,123 WARN  [io.agroal.pool] (agroal-11) Datasource '<default>': Connection to 10.0.0.9:5432 refused."),),
        ignores=(journal_line("keycloak.service", '2026-11-30 02:00:00,123 WARN  [org.keycloak.events] (executor-thread-1) type="LOGIN_ERROR", username="password authentication failed PSQLException"'),),
    ),
    LogPattern(
        "postgres_connection_failed", ERROR, r"logger=sqlstore.*(failed to connect to database|connection refused)", units=r"grafana-server\.service",
        matches=(journal_line("grafana-server.service", 'logger=sqlstore level=error msg="failed to connect to database"'),),
        ignores=(journal_line("grafana-server.service", 'logger=context userId=0 level=info msg="failed to connect to database" uname=x'),),
    ),
    LogPattern(
        "postgres_connection_failed", ERROR, r"password authentication failed|could not connect to server|connection to server at .* failed",
        units=r"nina-backup@.+\.service|nina-db-probe@.+\.service",
        matches=(journal_line("nina-db-probe@keycloakdb_server.service", 'psql: error: connection to server at "10.0.0.9", port 5432 failed: Connection refused'),),
    ),
    # Only peers that hold the tenancy's tls-crypt key reach TLS at all (our sites): a certificate refused (VERIFY
    # ERROR: expired, revoked, wrong CA) or a TLS failure after a site identified itself ("<cn>/<addr> TLS Error").
    # Internet scanners fail before that ("tls-crypt unwrapping failed"), and must not page anyone. (\x2f is "/",
    # mtail's regex delimiter.)
    LogPattern(
        "openvpn_tls_error", ERROR, r"VERIFY ERROR|^\S+ \S+ [^ \x2f]+\x2f\S+ TLS Error", file="/var/log/openvpn/*.log", file_unit="openvpn-server@.service",
        matches=(
            "2026-11-30 02:00:00 site1/203.0.113.7:1194 TLS Error: TLS handshake failed",
            "2026-11-30 02:00:00 203.0.113.7:1194 VERIFY ERROR: depth=0, error=certificate has expired: CN=site1, serial=5",
        ),
        ignores=(
            "2026-11-30 02:00:00 site1/203.0.113.7:1194 Peer Connection Initiated",
            "2026-11-30 02:00:00 198.51.100.9:51234 TLS Error: tls-crypt unwrapping failed from [AF_INET]198.51.100.9:51234",
            "2026-11-30 02:00:00 198.51.100.9:51234 TLS Error: TLS handshake failed",
        ),
    ),
)

def file_regex(glob: str) -> str:
    """A log file's glob as the RE2 regex mtail's getfilename() must fully match, "/" escaped for mtail's delimiter."""
    out = ""
    for ch in glob:
        out += "[^/]*" if ch == "*" else "\\" + ch if ch in "./" else ch
    return out.replace("[^/]", "[^\\/]")


LOG_FILES = tuple(dict.fromkeys(p.file for p in PATTERNS if p.file))  # what mtail reads besides the journal


def names(kind: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.name for p in PATTERNS if p.kind == kind))
