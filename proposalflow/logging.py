"""Structured logs for the API and the CLI: one JSON object per line, rotated by size, no secrets.

Where: `PROPOSALFLOW_LOG_DIR/<component>.log` (default `PROPOSALFLOW_HOME/logs/cli.log` and
`api.log`), rotated at `PROPOSALFLOW_LOG_MAX_BYTES` keeping `PROPOSALFLOW_LOG_BACKUPS` old files —
safely with several processes writing one file (uvicorn workers, concurrent CLI commands).
The API also writes the same lines to stderr, where container platforms collect them.

A line: `ts`, `level`, `logger`, `message`, `component`, `pid`, and when known `request_id` (the
API's `X-Request-ID`, generated when the caller sends none), `run_id` (one CLI invocation),
`flow_run_id` / `task_run_id` (Prefect's run logs), extra fields given with `extra=`, and
`exception` with the traceback.

Secrets never reach a line: the final text of every line has the value of each secret setting
(SecretStr fields: OPENAI_API_KEY, PROPOSALFLOW_JWT_SECRET, …), of each secret-looking
environment variable (…_KEY, …_SECRET, …_TOKEN, …PASSWORD) and the DATABASE_URL password replaced
by `***`, and so are URL passwords, Bearer tokens, `sk-…` keys, `password=…` pairs and private
key blocks anywhere. Flow and task logs go to Prefect as usual; the CLI also copies the ones of
the runs it starts into its log (`capture_prefect_run_logs`).

Only the standard library here: the CLI imports this on every start.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
import traceback
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)

# the loggers whose records go to the file (Prefect's own are added by capture_prefect_run_logs)
PRODUCT_LOGGERS = ("proposalflow", "api", "tasks", "flows", "blocks")
PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
OWN_LINE_LOGGERS = ("proposalflow.cli", "api.access")  # command and request lines: the log file only

_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_ENV_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|CREDENTIALS)$", re.IGNORECASE)
_PATTERNS = [
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^:/@\s\"']+:)[^@\s\"']+(?=@)", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), "sk-***"),
    (re.compile(r"(?P<keep>(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|token)"
                r"[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
     "-----PRIVATE KEY ***-----"),
]
_MIN_SECRET_LENGTH = 4  # shorter values would blank out ordinary words


def secret_values() -> set[str]:
    """Every configured secret value: secret settings, secret-looking env vars, the DATABASE_URL password."""
    values: set[str] = set()
    for name, value in os.environ.items():
        if _SECRET_ENV_NAME.search(name) and not name.startswith("PREFECT_"):
            values.add(value)
    urls = [os.environ.get("DATABASE_URL")]
    try:
        from .settings import get_settings

        settings = get_settings()
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if hasattr(value, "get_secret_value"):
                values.add(value.get_secret_value())
        if settings.database_url is not None:
            urls.append(settings.database_url.get_secret_value())
    except Exception:  # noqa: BLE001 - settings that do not validate must not stop logging
        pass
    for url in filter(None, urls):
        password = urlsplit(url).password
        if password:
            values |= {password, unquote(password)}
    return {v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}


def redact(text: str, secrets: set[str] | None = None) -> str:
    """`text` with every secret value and every secret-looking token replaced by ***."""
    for secret in sorted(secrets if secrets is not None else secret_values(), key=len, reverse=True):
        text = text.replace(secret, "***")
        escaped = json.dumps(secret)[1:-1]
        if escaped != secret:
            text = text.replace(escaped, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record, redacted as a whole."""

    def __init__(self, component: str):
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "component": self.component,
            "pid": record.process,
        }
        request_id, run_id = request_id_var.get(), run_id_var.get()
        if request_id:
            line["request_id"] = request_id
        if run_id:
            line["run_id"] = run_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class _ProductHandler(logging.Handler):
    """JSON lines to one file, rotated by size, safe with several processes writing it.

    The API's uvicorn workers share api.log and concurrent CLI commands share cli.log; the
    standard RotatingFileHandler loses lines there (each process rotates by its own count and
    renames files the others still write to). Here each line is written, and the file rotated,
    under an exclusive flock of the log folder; before writing, a process whose file was rotated
    away by another (the path now names another inode) reopens the path. The size is the file's
    own (fstat), so no file grows past `max_bytes` (unless one line alone is longer). The class
    also marks our handler, so configure_logging replaces it rather than adding a second one.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int):
        super().__init__()
        self.path, self.max_bytes, self.backups = Path(path), max_bytes, backups
        self._fd: int | None = None  # the log file, O_APPEND
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of what _fd has open
        self._folder_fd: int | None = None  # what the lock is taken on
        self._pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            if self._pid != os.getpid():  # a forked child: its own descriptions, its own lock
                self._fd = self._folder_fd = None
                self._pid = os.getpid()
            with self._folder_locked():
                fd = self._open_current()
                size = os.fstat(fd).st_size
                if self.backups > 0 and size and size + len(data) > self.max_bytes:
                    self._rotate()
                    fd = self._open_current()
                os.write(fd, data)  # one write of the whole line, appended
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)

    def close(self) -> None:
        with self.lock:
            for fd in (self._fd, self._folder_fd):
                if fd is not None and self._pid == os.getpid():
                    os.close(fd)
            self._fd = self._folder_fd = None
        super().close()

    @contextmanager
    def _folder_locked(self) -> Iterator[None]:
        if fcntl is None:  # no flock (Windows): one process per log file
            yield
            return
        if self._folder_fd is None:
            self._folder_fd = os.open(self.path.parent, os.O_RDONLY)
        fcntl.flock(self._folder_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._folder_fd, fcntl.LOCK_UN)

    def _open_current(self) -> int:
        """The descriptor of the file at `path` now (reopened if another process rotated it)."""
        try:
            st = os.stat(self.path)
            current = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._fd is not None and current != self._file_id:
            os.close(self._fd)
            self._fd = None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            st = os.fstat(self._fd)
            self._file_id = (st.st_dev, st.st_ino)
        return self._fd

    def _rotate(self) -> None:
        """cli.log → cli.log.1 → … → cli.log.<backups> (the oldest is dropped); called under the lock."""
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))


class _ProductStreamHandler(logging.StreamHandler):
    pass


def log_path(component: str) -> Path:
    return _log_folder() / f"{component}.log"


def configure_logging(component: str, *, stderr: bool = False, level: str | None = None) -> Path:
    """Send the product's loggers to `<log folder>/<component>.log` as JSON lines. Idempotent."""
    folder = _log_folder()
    folder.mkdir(parents=True, exist_ok=True)
    settings = _settings()
    max_bytes = getattr(settings, "log_max_bytes", 10_000_000)
    backups = getattr(settings, "log_backups", 5)
    level = level or getattr(settings, "log_level", "INFO")
    path = folder / f"{component}.log"
    formatter = JsonFormatter(component)
    file_handler = _ProductHandler(path, max_bytes=max_bytes, backups=backups)
    handlers: list[logging.Handler] = [file_handler]
    if stderr:
        handlers.append(_ProductStreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.setLevel(level)
    for name in (*PRODUCT_LOGGERS, *OWN_LINE_LOGGERS):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, (_ProductHandler, _ProductStreamHandler))]:
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        # our own lines (and, with stderr, everything of ours) are written by our handlers only:
        # no second copy through Prefect's console handler on the root logger
        logger.propagate = not (stderr or name in OWN_LINE_LOGGERS)
    return path


def capture_prefect_run_logs() -> None:
    """Also write Prefect's flow- and task-run logs of this process to our file (after Prefect set up its logging)."""
    source = logging.getLogger(PRODUCT_LOGGERS[0])
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        for handler in source.handlers:
            if isinstance(handler, _ProductHandler) and handler not in logger.handlers:
                logger.addHandler(handler)


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Put request_id / run_id on every line logged inside the block."""
    tokens = []
    if "request_id" in ids:
        tokens.append((request_id_var, request_id_var.set(ids["request_id"])))
    if "run_id" in ids:
        tokens.append((run_id_var, run_id_var.set(ids["run_id"])))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


@contextmanager
def cli_invocation(argv: list[str]) -> Iterator[str]:
    """Log a CLI command's start and end (exit code, duration, crash with traceback) under one run_id."""
    run_id = uuid.uuid4().hex
    try:
        configure_logging("cli")
    except OSError:
        pass  # an unwritable log folder must not stop the command
    logger = logging.getLogger("proposalflow.cli")
    command = " ".join(a for a in argv[:2] if not a.startswith("-"))
    started = time.perf_counter()
    with bound(run_id=run_id):
        logger.info("command started", extra={"command": command, "argv": argv})
        code: int | str | None = 0
        try:
            yield run_id
        except SystemExit as exc:
            code = exc.code if exc.code is not None else 0
            raise
        except BaseException:
            code = 1
            logger.exception("command crashed", extra={"command": command})
            raise
        finally:
            logger.log(logging.INFO if code in (0, None) else logging.WARNING, "command finished",
                       extra={"command": command, "exit_code": code,
                              "duration_ms": round((time.perf_counter() - started) * 1000, 1)})


class RequestLogMiddleware:
    """ASGI middleware: one JSON access line per HTTP request, an X-Request-ID on every response.

    The caller's `X-Request-ID` is kept when it is a sane token (else a new one is made), bound to
    every line logged while the request is handled, and returned in the response header.
    """

    _SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

    def __init__(self, app, logger_name: str = "api.access"):
        self.app = app
        self.logger = logging.getLogger(logger_name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if self._SANE_ID.match(incoming) else uuid.uuid4().hex
        status = {"code": 500}
        started = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        with bound(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                self.logger.exception("request crashed", extra=self._fields(scope, 500, started))
                raise
            level = logging.ERROR if status["code"] >= 500 else (
                logging.WARNING if status["code"] >= 400 else logging.INFO)
            self.logger.log(level, "request", extra=self._fields(scope, status["code"], started))

    @staticmethod
    def _fields(scope, status: int, started: float) -> dict:
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        return {"method": scope.get("method"), "path": scope.get("path"), "query": query or None,
                "status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "client": client[0] if client else None}


def _settings():
    try:
        from .settings import get_settings

        return get_settings()
    except Exception:  # noqa: BLE001
        return None


def _log_folder() -> Path:
    settings = _settings()
    if settings is not None:
        return settings.log_folder
    home = Path(os.environ.get("PROPOSALFLOW_HOME", "~/.proposalflow")).expanduser()
    return Path(os.environ.get("PROPOSALFLOW_LOG_DIR", home / "logs")).expanduser()
