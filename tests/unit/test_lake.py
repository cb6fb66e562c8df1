"""mlops.lake on file:// URIs (the S3 path is exercised in tests/integration)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mlops import lake


def test_join_and_roundtrip(tmp_path: Path):
    root = tmp_path.as_uri()
    uri = lake.join(root, "curated", "flights", "ds=2013-01-01", "data.parquet")
    assert uri.endswith("/curated/flights/ds=2013-01-01/data.parquet")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    lake.write_parquet(uri, frame)
    assert lake.exists(uri)
    pd.testing.assert_frame_equal(lake.read_parquet(uri), frame)
    assert list(lake.list_uris(lake.join(root, "curated"))) == [uri]


def test_write_is_atomic_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri = lake.join(tmp_path.as_uri(), "p", "data.bin")
    lake.write_bytes(uri, b"old")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        lake.write_bytes(uri, b"new" * 1000)
    monkeypatch.undo()
    assert lake.read_bytes(uri) == b"old"
    assert os.listdir(lake.local_path(uri).parent) == ["data.bin"], "temporary file left behind"


def test_parquet_bytes_are_deterministic(tmp_path: Path):
    frame = pd.DataFrame({"a": range(100)})
    a, b = lake.join(tmp_path.as_uri(), "a.parquet"), lake.join(tmp_path.as_uri(), "b.parquet")
    lake.write_parquet(a, frame)
    lake.write_parquet(b, frame)
    assert lake.read_bytes(a) == lake.read_bytes(b)


def test_delete_prefix(tmp_path: Path):
    root = tmp_path.as_uri()
    for name in ("x/1", "x/2", "y/3"):
        lake.write_text(lake.join(root, name), name)
    assert lake.delete_prefix(lake.join(root, "x")) == 2
    assert [u.rsplit("/", 2)[-2:] for u in lake.list_uris(root)] == [["y", "3"]]


def test_local_path_rejects_other_schemes():
    with pytest.raises(ValueError, match="not a file:// URI"):
        lake.local_path("s3://bucket/key")
