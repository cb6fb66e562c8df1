"""Every read and write of the landing zone and the lake, addressed by URI.

Two schemes are supported: ``file:///abs/path`` (embedded profile) and ``s3://bucket/prefix``
(scale-out). Writes are atomic: a reader sees the old object or the new one, never a partial file
(``os.replace`` of a temporary sibling on file systems; a single PUT on S3).

On file systems a written file gets the mode ``open()`` would give it (``0o666 & ~umask``, not the
temporary file's 0600), so readers under other accounts can open the lake. The temporary sibling
(``.{name}.XXXXXXXX.tmp``) is locked (``flock``) by its writer until the rename; one whose writer
died (SIGKILL, OOM) is swept at the next write of the same file, and
:func:`sweep_stale_temp_files` sweeps a whole tree. A live writer's file is never touched.

A write that a retry cannot fix (permission denied, read-only or full file system, a directory
in the way; S3 access denied or no such bucket) raises :class:`LakeWriteError`, a
:class:`mlops.errors.PermanentError` naming the partition, the final path and what to do.

S3 clients come from a factory. The default uses the standard AWS environment (and
``AWS_ENDPOINT_URL`` for MinIO or any S3-compatible endpoint); under Airflow,
:mod:`mlops.airflow.storage` installs a factory built from the ``aws_default`` connection.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from mlops.errors import PermanentError

if TYPE_CHECKING:
    import pandas as pd

S3ClientFactory = Callable[[], Any]
_factory_lock = threading.Lock()
_s3_factory: S3ClientFactory | None = None
_s3_client: Any = None


def set_s3_client_factory(factory: S3ClientFactory | None) -> None:
    """Install the callable that builds the S3 client (``None`` restores the default)."""
    global _s3_factory, _s3_client
    with _factory_lock:
        _s3_factory, _s3_client = factory, None


def _default_s3_client() -> Any:
    """A client from the environment as it is now (a new session: boto3's default one keeps the
    credentials it resolved first, so a later change of ``AWS_*`` would be ignored)."""
    import boto3

    session = boto3.session.Session()
    return session.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def s3_client() -> Any:
    """The process-wide S3 client (built on first use)."""
    global _s3_client
    with _factory_lock:
        if _s3_client is None:
            _s3_client = (_s3_factory or _default_s3_client)()
        return _s3_client


def join(uri: str, *parts: str) -> str:
    """Join path segments onto a URI: ``join("s3://b/p", "x", "y.csv") == "s3://b/p/x/y.csv"``."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def local_path(uri: str) -> Path:
    """The filesystem path of a ``file://`` URI (raises for other schemes).

    The path is percent-decoded once, as RFC 8089 says (roots come from ``Path.as_uri()``, which
    encodes spaces and non-ASCII). A ``..`` segment after decoding is refused: lake URIs are
    absolute and normalized, so one means a segment came from outside (``%2e%2e`` decodes to it).
    """
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"{uri!r} is not a file:// URI")
    path = unquote(parsed.path)
    if ".." in path.split("/"):
        raise ValueError(
            f"{uri!r} has a '..' segment once decoded ({path!r}): lake URIs are absolute, normalized "
            "paths; build them with lake.join from names the platform chose"
        )
    return Path(path)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        resp = s3_client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        return any(o["Key"] == key for o in resp.get("Contents", []))
    return local_path(uri).exists()


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return local_path(uri).read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically (replacing what was there).

    Raises :class:`LakeWriteError` (a :class:`~mlops.errors.PermanentError`) when a retry cannot
    help; other errors (an I/O error, a network failure) propagate as they are.
    """
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        except Exception as exc:
            code = _s3_error_code(exc)
            if code in S3_PERMANENT_CODES:
                action = S3_PERMANENT_CODES[code].format(bucket=bucket)
                raise LakeWriteError(uri, f"S3 {code}", action) from exc
            raise
        return
    path = local_path(uri)
    try:
        _write_file(path, data)
    except OSError as exc:
        if exc.errno in PERMANENT_ERRNOS:
            raise LakeWriteError.from_os_error(uri, path, exc) from exc
        raise


#: A temporary sibling of a file being written: ``.{name}.{8 random chars}.tmp`` (mkstemp's names).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: A temporary sibling whose writer is gone is swept at the next write of the same file once it is
#: this old: the lock already proves the writer dead; the age only covers the instant between
#: ``mkstemp`` creating the file and its writer locking it.
TEMP_GRACE_SECONDS = 10.0
#: :func:`sweep_stale_temp_files`' default age.
STALE_TEMP_SECONDS = 3600.0


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dir(path.parent, path.name, TEMP_GRACE_SECONDS)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # Held until after the rename (closing the file releases it, so does the writer's
            # death): a sweeper that cannot take it leaves the file alone.
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would survive the rename
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        raise


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it (``/proc``), else set-and-restore under a lock."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _sweep_dir(directory: Path, name: str | None, min_age_seconds: float) -> list[Path]:
    """Remove the temporary siblings in ``directory`` (of file ``name``, or of any file) that no
    live writer holds and that are at least ``min_age_seconds`` old. Never raises."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match or (name is not None and match.group("name") != name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < min_age_seconds:
                continue
            fd = os.open(entry.path, os.O_RDWR | os.O_NOFOLLOW)  # O_RDWR: NFS needs it for LOCK_EX
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its writer is alive
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def sweep_stale_temp_files(prefix_uri: str, older_than_seconds: float = STALE_TEMP_SECONDS) -> list[str]:
    """Remove the temporary files below ``prefix_uri`` left by writers that died mid-write.

    Only files named like :func:`write_bytes`' temporary siblings, at least ``older_than_seconds``
    old, and not locked by a live writer. Returns the removed files as URIs. S3 writes leave no
    temporary objects (a PUT is atomic): nothing to do there.
    """
    if is_s3(prefix_uri):
        return []
    removed: list[Path] = []
    for directory, _, _ in os.walk(local_path(prefix_uri)):
        removed.extend(_sweep_dir(Path(directory), None, older_than_seconds))
    return [p.as_uri() for p in removed]


#: errno -> what to do. A retry cannot fix these: the write fails at once (:class:`LakeWriteError`).
PERMANENT_ERRNOS: dict[int, str] = {
    errno.EACCES: "give the account running the task (uid {uid}) write access to {dir}",
    errno.EPERM: "the file system refuses the change in {dir} (an immutable or append-only attribute, "
    "see lsattr -d; or a mount that forbids it): clear the attribute (chattr -i) or give the account "
    "running the task (uid {uid}) write access",
    errno.EROFS: "the file system holding {dir} is mounted read-only: remount it read-write, or point "
    "the lake (MLOPS_LAKE_URI) or landing (MLOPS_LANDING_URI) at a writable location",
    errno.ENOSPC: "the file system holding {dir} is full: free space (df -h {dir}); a retry would only "
    "write another large temporary file into the full disk",
    errno.EDQUOT: "the disk quota of the account running the task (uid {uid}) is exhausted on {dir}: "
    "free space or raise the quota",
    errno.EFBIG: "the file is larger than the file system or the account's limits allow (ulimit -f)",
    errno.ENOTDIR: "a file stands where a directory of the path {dir} should be: move it away",
    errno.EISDIR: "a directory is in the way of the file: move it away",
    errno.ENAMETOOLONG: "the path is too long for the file system: shorten MLOPS_LAKE_URI",
}

#: S3 error code -> what to do. Retried codes (throttling, 5xx, timeouts) are not listed.
S3_PERMANENT_CODES: dict[str, str] = {
    "AccessDenied": "grant s3:PutObject on bucket {bucket} to the credentials of the aws_default connection",
    "AllAccessDisabled": "access to bucket {bucket} is disabled: use another bucket",
    "InvalidAccessKeyId": "fix the access key of the aws_default connection",
    "SignatureDoesNotMatch": "fix the secret key of the aws_default connection",
    "NoSuchBucket": "create bucket {bucket}, or fix MLOPS_LAKE_URI / MLOPS_LANDING_URI",
}

_PARTITION = re.compile(r"/(ds=[^/]+)(?:/|$)")


def _s3_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


class LakeWriteError(PermanentError):
    """A write that a retry cannot fix; the message names the partition, the final path and what
    to do. ``__cause__`` is the original ``OSError`` (or S3 ``ClientError``)."""

    def __init__(self, uri: str, reason: str, action: str) -> None:
        target = str(local_path(uri)) if uri.startswith("file://") else uri
        match = _PARTITION.search(target)
        self.uri, self.reason, self.action = uri, reason, action
        self.partition = match.group(1) if match else None
        where = f"{self.partition}: " if self.partition else ""
        super().__init__(
            f"{where}cannot write {target}: {reason}. Not retried (a retry cannot fix it): {action}; "
            "then clear the task."
        )

    @classmethod
    def from_os_error(cls, uri: str, path: Path, exc: OSError) -> LakeWriteError:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        failed = ""
        if exc.filename2:  # os.replace(tmp, path)
            failed = " (renaming the written temporary file onto it)"
        elif exc.filename and _TEMP_NAME.match(Path(exc.filename).name):
            failed = f" (writing its temporary file in {path.parent})"
        elif exc.filename and str(exc.filename) != str(path):
            failed = f" (on {exc.filename})"
        reason = f"{exc.strerror or exc} ({name}){failed}"
        action = PERMANENT_ERRNOS[exc.errno or 0].format(uid=os.geteuid(), dir=path.parent)
        return cls(uri, reason, action)


def list_uris(prefix_uri: str) -> Iterator[str]:
    """Every object (file) below ``prefix_uri``, recursively, as URIs, in sorted order."""
    if is_s3(prefix_uri):
        bucket, key = _split_s3(prefix_uri)
        key = key.rstrip("/") + "/" if key else ""
        paginator = s3_client().get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        for k in sorted(keys):
            yield f"s3://{bucket}/{k}"
        return
    root = local_path(prefix_uri)
    if not root.exists():
        return
    base = prefix_uri.rstrip("/")
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            yield join(base, p.relative_to(root).as_posix())


def delete_prefix(prefix_uri: str) -> int:
    """Delete everything below ``prefix_uri``; returns how many objects were removed."""
    uris = list(list_uris(prefix_uri))
    if is_s3(prefix_uri):
        client = s3_client()
        for uri in uris:
            bucket, key = _split_s3(uri)
            client.delete_object(Bucket=bucket, Key=key)
    else:
        root = local_path(prefix_uri)
        if root.exists():
            shutil.rmtree(root)
    return len(uris)


def delete(uri: str) -> None:
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        s3_client().delete_object(Bucket=bucket, Key=key)
    else:
        local_path(uri).unlink(missing_ok=True)


def delete_if_unchanged(uri: str, expected_sha256: str) -> bool:
    """Delete ``uri`` only if its bytes still hash to ``expected_sha256`` (``sha256:<hex>``).

    Returns whether it was deleted; a missing object counts as deleted. On file systems the file
    is first renamed aside (atomic) and hashed there, so a writer that replaces it in the meantime
    is never the one deleted; a changed file is put back without clobbering a newer one. On S3 the
    object is deleted only if its ETag is still the one that was hashed (a conditional delete where
    the endpoint supports it; otherwise a short window remains between the read and the delete).
    """
    import hashlib

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    if is_s3(uri):
        bucket, key = _split_s3(uri)
        client = s3_client()
        try:
            obj = client.get_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _s3_error_code(exc) in {"NoSuchKey", "404"}:
                return True
            raise
        if digest(obj["Body"].read()) != expected_sha256:
            return False
        try:
            client.delete_object(Bucket=bucket, Key=key, IfMatch=obj["ETag"])
        except Exception as exc:
            if _s3_error_code(exc) == "PreconditionFailed":
                return False  # replaced since it was read: keep the new one
            if _s3_error_code(exc) not in {"NotImplemented", "InvalidArgument"}:
                raise
            client.delete_object(Bucket=bucket, Key=key)
        return True
    path = local_path(uri)
    aside = path.with_name(f".{path.name}.{os.getpid()}-{time.monotonic_ns()}.checking")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    try:
        unchanged = digest(aside.read_bytes()) == expected_sha256
    except BaseException:
        _put_back(aside, path)
        raise
    if unchanged:
        aside.unlink()
        return True
    _put_back(aside, path)
    return False


def _put_back(aside: Path, path: Path) -> None:
    """Move ``aside`` back to ``path`` unless a newer file took its place (that one stays)."""
    try:
        os.link(aside, path)  # never clobbers
    except FileExistsError:
        pass
    except OSError:  # no hard links on this file system
        if not path.exists():
            os.rename(aside, path)
            return
    aside.unlink(missing_ok=True)


def copy(src: str, dst: str) -> None:
    write_bytes(dst, read_bytes(src))


def read_parquet(uri: str, **kwargs: Any) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(read_bytes(uri)), **kwargs)


def parquet_bytes(frame: pd.DataFrame, metadata: Mapping[bytes, bytes] | None = None) -> bytes:
    """Deterministic parquet bytes of ``frame`` (zstd), with ``metadata`` added to the footer's
    key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def write_parquet(uri: str, frame: pd.DataFrame, metadata: Mapping[bytes, bytes] | None = None) -> None:
    """Write ``frame`` as parquet atomically (deterministic bytes for the same frame), with
    ``metadata`` added to the footer's key-value metadata."""
    write_bytes(uri, parquet_bytes(frame, metadata))


def parquet_footer(uri: str) -> dict[bytes, bytes]:
    """The key-value metadata of the parquet file at ``uri``."""
    import pyarrow.parquet as pq

    return dict(pq.ParquetFile(io.BytesIO(read_bytes(uri))).metadata.metadata or {})


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")
