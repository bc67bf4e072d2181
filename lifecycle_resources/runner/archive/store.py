"""Where archived objects live: a local directory (file:///path) or S3-compatible storage (s3://bucket/prefix).

Data objects may be overwritten (a data object without its manifest is partial and never trusted); manifests are
written once (`put_once`: an existing manifest is never replaced). Credentials stay inside the S3 client: never
in a URL, a repr, a record or an error message."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ...errors import LifecycleError

ENDPOINT_ENV = "AWS_ENDPOINT_URL"  # boto3's own variable; also read by `lifecycle archive` commands


class StoreError(LifecycleError):
    """The object store refused or failed an operation (named by URL and key, never by credentials)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime  # the store's clock, timezone-aware


@dataclass(frozen=True)
class PendingUpload:
    """An upload that never completed: an S3 multipart upload, or a local file still written aside. It is not
    an object: nothing reads it; it only takes space until aborted."""

    key: str           # the object it was meant to become
    started: datetime
    upload_id: str     # S3's upload id; locally the aside file's path under the root


class ArchiveStore(ABC):
    """A flat key space under one URL."""

    url: str

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload `path` to `key`, replacing a partial object left there."""

    @abstractmethod
    def put_once(self, key: str, data: bytes) -> bool:
        """Write `key` unless it exists; False when it existed (it is left as it was)."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The object's bytes (small objects: manifests), None when missing."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, None when missing."""

    @abstractmethod
    def fetch(self, key: str, workdir: Path) -> Path | None:
        """A local file holding the object (for reading only), None when missing."""

    def keys(self, prefix: str = "") -> list[str]:
        """Every key under `prefix`, sorted."""
        return [o.key for o in self.objects(prefix)]

    @abstractmethod
    def objects(self, prefix: str = "") -> list[StoredObject]:
        """Every complete object under `prefix`, sorted by key."""

    @abstractmethod
    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """The uploads under `prefix` started and never completed."""

    @abstractmethod
    def abort(self, upload: PendingUpload) -> None:
        """Discard an incomplete upload (never a complete object)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key` (used for partial objects only)."""

    @abstractmethod
    def probe(self) -> str | None:
        """Why the store cannot be written now (None: it can); checks reach and rights, writes nothing."""

    def location(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalStore(ArchiveStore):
    """A directory; files appear complete or not at all (written aside, then renamed or linked)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StoreError(f"archive key {key!r} leaves the store {self.url}")
        return path

    def _aside(self, path: Path, write: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        return Path(tmp)

    def _sync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        with path.open("rb") as src:
            tmp = self._aside(target, lambda out: shutil.copyfileobj(src, out, 1 << 20))
        os.replace(tmp, target)
        self._sync_dir(target.parent)

    def put_once(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        tmp = self._aside(target, lambda out: out.write(data))
        try:
            os.link(tmp, target)  # fails when the target exists: never replaces a manifest
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        self._sync_dir(target.parent)
        return True

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def fetch(self, key: str, workdir: Path) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def _files(self, prefix: str, hidden: bool) -> list[tuple[str, os.stat_result]]:
        if not self.root.is_dir():
            return []
        found = [(p.relative_to(self.root).as_posix(), p) for p in self.root.rglob("*")
                 if p.is_file() and p.name.startswith(".") == hidden]
        return sorted((k, p.stat()) for k, p in found if k.startswith(prefix))

    def objects(self, prefix: str = "") -> list[StoredObject]:
        return [StoredObject(k, st.st_size, _utc(st.st_mtime)) for k, st in self._files(prefix, hidden=False)]

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        # `_aside` names them .<name>.<random>.part next to their target
        aside = [(k, st) for k, st in self._files("", hidden=True) if k.endswith(".part")]
        pending = []
        for k, st in aside:
            folder, _, name = k.rpartition("/")
            target = (f"{folder}/" if folder else "") + name[1:].rsplit(".", 2)[0]
            if target.startswith(prefix):
                pending.append(PendingUpload(target, _utc(st.st_mtime), k))
        return pending

    def abort(self, upload: PendingUpload) -> None:
        path = self._path(upload.upload_id)
        if path.name.startswith(".") and path.name.endswith(".part"):
            path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def probe(self) -> str | None:
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # the first write creates the missing directories below it
        if not existing.is_dir():
            return f"{existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable by this user"
        return None


class S3Store(ArchiveStore):
    """A bucket and prefix of S3 or an S3-compatible server (endpoint_url). Credentials: given here (from a
    Pulumi secret) or boto3's usual chain (environment, profile); they are never part of `url`."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, session_token: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # A session of its own: boto3's default session keeps the credentials it resolved first for the whole
        # process, so a long-lived runner would never see rotated ones.
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region or os.environ.get("AWS_REGION") or "us-east-1",
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            # S3-compatible stores differ in checksum support: send them only when required.
            config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                          retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60))
        self._secrets = [s for s in (access_key_id, secret_access_key, session_token) if s]

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return StoreError(f"{self.location(key)}: {action} failed: {text}")

    @staticmethod
    def _code(exc: Exception) -> str:
        """S3's error code; "" for a failure without a response (a connection refused, cut or timed out: its
        `response` is None)."""
        return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))

    def _missing(self, exc: Exception) -> bool:
        return self._code(exc) in {"404", "NoSuchKey", "NotFound"}

    def put_file(self, key: str, path: Path) -> None:
        try:
            self._client.upload_file(str(path), self.bucket, self._key(key))
        except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all mean "not uploaded"
            raise self._fail("upload", key, exc) from None

    def put_once(self, key: str, data: bytes) -> bool:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except Exception as exc:  # noqa: BLE001
            if self._code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return False
            raise self._fail("write", key, exc) from None
        return True

    def read(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:  # noqa: BLE001
            if self._missing(exc):
                return None
            raise self._fail("read", key, exc) from None

    def size(self, key: str) -> int | None:
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except Exception as exc:  # noqa: BLE001
            if self._missing(exc):
                return None
            raise self._fail("head", key, exc) from None

    def fetch(self, key: str, workdir: Path) -> Path | None:
        dest = workdir / hashlib.sha256(key.encode()).hexdigest()[:16]
        try:
            self._client.download_file(self.bucket, self._key(key), str(dest))
        except Exception as exc:  # noqa: BLE001
            if self._missing(exc):
                return None
            raise self._fail("download", key, exc) from None
        return dest

    def _pages(self, operation: str, prefix: str, field: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        try:
            for page in self._client.get_paginator(operation).paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                found += page.get(field, [])
        except Exception as exc:  # noqa: BLE001
            raise self._fail("list", prefix, exc) from None
        return found

    def _unprefixed(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def objects(self, prefix: str = "") -> list[StoredObject]:
        found = self._pages("list_objects_v2", prefix, "Contents")
        return sorted((StoredObject(self._unprefixed(o["Key"]), int(o["Size"]), o["LastModified"]) for o in found),
                      key=lambda o: o.key)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        found = self._pages("list_multipart_uploads", prefix, "Uploads")
        return [PendingUpload(self._unprefixed(u["Key"]), u["Initiated"], u["UploadId"]) for u in found]

    def abort(self, upload: PendingUpload) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(upload.key),
                                                UploadId=upload.upload_id)
        except Exception as exc:  # noqa: BLE001
            if self._code(exc) != "NoSuchUpload":
                raise self._fail("abort upload", upload.key, exc) from None

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # noqa: BLE001
            raise self._fail("delete", key, exc) from None

    def probe(self) -> str | None:
        try:
            self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1)
        except Exception as exc:  # noqa: BLE001 - unreachable, no bucket, bad credentials: all "cannot write"
            return str(self._fail("list", "", exc)).removeprefix(f"{self.location('')}: ")
        return None


def _utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, timezone.utc)


def open_store(url: str, *, endpoint_url: str | None = None, **credentials: str | None) -> ArchiveStore:
    """The store a URL names: file:///absolute/path or s3://bucket[/prefix]. S3 endpoint: `endpoint_url`, else
    $AWS_ENDPOINT_URL, else AWS."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise LifecycleError(f"archive URL {url!r}: a local store is file:///absolute/path")
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc or "@" in parsed.netloc:
            raise LifecycleError("archive URL: an S3 store is s3://bucket/prefix (credentials never go in the URL)")
        return S3Store(parsed.netloc, unquote(parsed.path), endpoint_url=endpoint_url or os.environ.get(ENDPOINT_ENV),
                       **credentials)
    raise LifecycleError(f"archive URL {url!r}: expected file:///path or s3://bucket/prefix")

