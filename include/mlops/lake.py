"""Every read and write of the landing zone and the lake, addressed by URI.

Two schemes are supported: ``file:///abs/path`` (embedded profile) and ``s3://bucket/prefix``
(scale-out). Writes are atomic: a reader sees the old object or the new one, never a partial file
(``os.replace`` of a temporary sibling on file systems; a single PUT on S3).

S3 clients come from a factory. The default uses the standard AWS environment (and
``AWS_ENDPOINT_URL`` for MinIO or any S3-compatible endpoint); under Airflow,
:mod:`mlops.airflow.storage` installs a factory built from the ``aws_default`` connection.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

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
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


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
    """The filesystem path of a ``file://`` URI (raises for other schemes)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"{uri!r} is not a file:// URI")
    return Path(unquote(parsed.path))


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
    """Write ``data`` to ``uri`` atomically (replacing what was there)."""
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def copy(src: str, dst: str) -> None:
    write_bytes(dst, read_bytes(src))


def read_parquet(uri: str, **kwargs: Any) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(read_bytes(uri)), **kwargs)


def write_parquet(uri: str, frame: pd.DataFrame) -> None:
    """Write ``frame`` as parquet atomically (deterministic bytes for the same frame)."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    write_bytes(uri, buf.getvalue())


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")
