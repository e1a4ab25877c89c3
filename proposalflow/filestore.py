"""Where uploaded originals are kept: a local folder by default, Supabase Storage when
SUPABASE_URL and a service key are set.

Keys are content-addressed (`<prefix>/<sha256[:16]>/<file name>`), so storing the same file
twice is one object, and each version of a re-uploaded file keeps its own original.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import IntegrationFailed, NotFound, ValidationFailed
from .http import backoff_delay
from .settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredFile:
    key: str
    uri: str  # file:///… or storage://<bucket>/<key>
    size: int
    sha256: str


class FileStore(Protocol):
    def put(self, key: str, path: Path, content_type: str) -> str: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


def safe_name(filename: str) -> str:
    """A file name safe as a storage key part: no folders, no dot segments, a limited alphabet."""
    name = Path(filename.replace("\\", "/")).name
    stem, dot, suffix = name.rpartition(".")
    cleaned = _UNSAFE.sub("-", stem if dot else name).strip("-.") or "file"
    return (cleaned[:120] + ("." + _UNSAFE.sub("", suffix)[:10] if dot and suffix else "")).lower()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def store_file(store: FileStore, path: Path, filename: str, content_type: str, prefix: str = "uploads") -> StoredFile:
    digest = sha256_of(path)
    key = f"{prefix}/{digest[:16]}/{safe_name(filename)}"
    uri = store.put(key, path, content_type)
    return StoredFile(key, uri, path.stat().st_size, digest)


class LocalFileStore:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or ".." in Path(key).parts:
            raise ValidationFailed(f"storage key {key!r} leaves the store", [{"field": "key", "message": "unsafe"}])
        return path

    def put(self, key: str, path: Path, content_type: str) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            partial = target.with_name(target.name + f".{os.getpid()}.partial")
            shutil.copyfile(path, partial)
            os.replace(partial, target)  # atomic: a reader never sees half a file
        return target.as_uri()

    def get(self, key: str) -> bytes:
        target = self._path(key)
        if not target.is_file():
            raise NotFound(f"stored file {key} does not exist")
        return target.read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class SupabaseFileStore:
    """Supabase Storage through the `supabase` client (service key: bypasses Storage policies)."""

    def __init__(self, url: str, service_key: str, bucket: str, *, attempts: int = 3, timeout: float = 60.0):
        self.url, self.bucket, self.attempts = url.rstrip("/"), bucket, attempts
        from supabase import ClientOptions, create_client

        self._client = create_client(self.url, service_key,
                                     options=ClientOptions(storage_client_timeout=int(timeout)))
        self._bucket_ready = False

    def _call(self, what: str, fn):
        from storage3.exceptions import StorageApiError

        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except StorageApiError as exc:
                status = int(exc.status) if str(exc.status).isdigit() else 0
                if status == 404 or "not found" in str(exc.message).lower():
                    raise NotFound(f"Supabase Storage {what}: {exc.message}") from exc
                if status and status < 500 and status != 429:
                    raise IntegrationFailed(f"Supabase Storage {what}: HTTP {status} {exc.message}") from exc
                last = f"HTTP {status} {exc.message}"
            except Exception as exc:  # noqa: BLE001 - httpx transport errors and the like
                if isinstance(exc, (NotFound, IntegrationFailed)):
                    raise
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                time.sleep(backoff_delay(attempt))
        raise IntegrationFailed(f"Supabase Storage {what} failed after {self.attempts} attempts ({last})")

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        storage = self._client.storage
        try:
            self._call(f"bucket {self.bucket}", lambda: storage.get_bucket(self.bucket))
        except NotFound:
            self._call(f"create bucket {self.bucket}",
                       lambda: storage.create_bucket(self.bucket, options={"public": False}))
        self._bucket_ready = True

    def put(self, key: str, path: Path, content_type: str) -> str:
        self._ensure_bucket()
        bucket = self._client.storage.from_(self.bucket)
        self._call(f"upload {key}", lambda: bucket.upload(key, path, {"content-type": content_type, "upsert": "true"}))
        return f"storage://{self.bucket}/{key}"

    def get(self, key: str) -> bytes:
        bucket = self._client.storage.from_(self.bucket)
        return self._call(f"download {key}", lambda: bucket.download(key))

    def delete(self, key: str) -> None:
        bucket = self._client.storage.from_(self.bucket)
        self._call(f"remove {key}", lambda: bucket.remove([key]))


def make_file_store(settings: Settings) -> FileStore:
    if settings.supabase_url and settings.supabase_service_key:
        return SupabaseFileStore(settings.supabase_url, settings.supabase_service_key.get_secret_value(),
                                 settings.storage_bucket)
    return LocalFileStore(settings.home_dir / "files")
