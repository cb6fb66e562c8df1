"""mlops.lake on file:// URIs (the S3 path is exercised in tests/integration)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from mlops import lake
from mlops.errors import PermanentError


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


# --- file modes, permanent errors, temporary files left by killed writers -------------------------


def test_written_files_get_the_umask_mode_not_the_temp_files(tmp_path: Path):
    for mask in (0o022, 0o002, 0o077):
        uri = lake.join(tmp_path.as_uri(), f"umask={mask:03o}", "ds=2013-01-01", "data.parquet")
        old = os.umask(mask)
        try:
            lake.write_bytes(uri, b"x")
            lake.write_bytes(uri, b"y")  # a rewrite too
        finally:
            os.umask(old)
        mode = stat.S_IMODE(os.stat(lake.local_path(uri)).st_mode)
        assert mode == 0o666 & ~mask, f"mode {mode:o}, expected {0o666 & ~mask:o} under umask {mask:03o}"


def _write_as_nobody(uri: str) -> tuple[str, str, bool]:
    """Run lake.write_bytes(uri) in a forked child as uid/gid 65534: (exception type, message, is
    PermanentError)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def run() -> None:
        os.setgid(65534)
        os.setuid(65534)
        try:
            lake.write_bytes(uri, b"data")
            child.send(("", "", False))
        except BaseException as exc:  # report whatever it is
            child.send((type(exc).__name__, str(exc), isinstance(exc, PermanentError)))

    proc = ctx.Process(target=run)
    proc.start()
    proc.join(60)
    assert parent.poll(5), f"the child wrote nothing back (exit code {proc.exitcode})"
    return parent.recv()


def test_permission_denied_fails_permanently_naming_partition_and_final_path(tmp_path: Path):
    if os.geteuid() == 0:  # root ignores modes: write as nobody into a tree root owns
        base = Path(tempfile.mkdtemp(prefix="mlops-perm-"))
        try:
            base.chmod(0o755)
            final = base / "curated" / "flights" / "ds=2013-03-05" / "data.parquet"
            final.parent.mkdir(parents=True)
            kind, message, permanent = _write_as_nobody(final.as_uri())
        finally:
            shutil.rmtree(base)
    else:
        final = tmp_path / "curated" / "flights" / "ds=2013-03-05" / "data.parquet"
        final.parent.mkdir(parents=True)
        final.parent.chmod(0o555)
        try:
            with pytest.raises(PermanentError) as info:
                lake.write_bytes(final.as_uri(), b"data")
            kind, message, permanent = type(info.value).__name__, str(info.value), True
        finally:
            final.parent.chmod(0o755)
    assert permanent and kind == "LakeWriteError", (kind, message)
    assert message.startswith(f"ds=2013-03-05: cannot write {final}: Permission denied (EACCES)"), message
    assert f"write access to {final.parent}" in message and "Not retried" in message, message
    assert message.endswith("then clear the task."), message


RO_WRITER = textwrap.dedent(
    """
    import json, sys
    from mlops import lake
    try:
        lake.write_bytes(sys.argv[1], b"data")
        print(json.dumps(["", ""]))
    except Exception as exc:
        print(json.dumps([type(exc).__name__, str(exc)]))
    """
)


def test_read_only_file_system_fails_permanently(tmp_path: Path):
    """The partition's directory bind-mounted read-only in a private mount namespace (EROFS)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is needed for a read-only mount")
    part = tmp_path / "lake" / "curated" / "flights" / "ds=2013-03-05"
    part.mkdir(parents=True)
    final = part / "data.parquet"
    userns = [] if os.geteuid() == 0 else ["-r"]
    script = (
        f'mount --bind "{part}" "{part}" && mount -o remount,bind,ro "{part}" || exit 99; '
        f'exec "{sys.executable}" -c "$0" "{final.as_uri()}"'
    )
    proc = subprocess.run(
        ["unshare", *userns, "-m", "--propagation", "private", "sh", "-c", script, RO_WRITER],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 99 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot make a read-only mount here: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, message = json.loads(proc.stdout.strip().splitlines()[-1])
    assert kind == "LakeWriteError", (kind, message)
    assert message.startswith(f"ds=2013-03-05: cannot write {final}: Read-only file system (EROFS)")
    assert "mounted read-only: remount it read-write" in message and "Not retried" in message
    assert not final.exists() and os.listdir(part) == []


def test_a_directory_in_the_way_fails_permanently(tmp_path: Path):
    uri = lake.join(tmp_path.as_uri(), "predictions", "ds=2013-03-05", "data.parquet")
    lake.local_path(uri).mkdir(parents=True)
    with pytest.raises(PermanentError, match=r"^ds=2013-03-05: cannot write .*data.parquet: Is a directory"):
        lake.write_bytes(uri, b"x")
    assert os.listdir(lake.local_path(uri).parent) == ["data.parquet"], "temporary file left behind"


HANGING_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mlops import lake

    real_replace = os.replace

    def replace_then_hang(src, dst):
        Path(sys.argv[2]).write_text(str(src))  # the temporary file is written, not renamed yet
        time.sleep(600)

    os.replace = replace_then_hang
    lake.write_bytes(sys.argv[1], b"killed" * 100_000)
    """
)


def _start_hanging_writer(uri: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"in-write-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", HANGING_WRITER, uri, str(marker)], start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, "the writer exited before its rename"
        assert time.monotonic() < deadline, "the writer never reached its rename"
        time.sleep(0.1)
    return proc, Path(marker.read_text())


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_temp_file_of_a_killed_writer_is_swept_and_a_live_one_never(tmp_path: Path):
    uri = lake.join(tmp_path.as_uri(), "curated", "flights", "ds=2013-03-05", "data.parquet")
    lake.write_bytes(uri, b"old")
    live, live_tmp = _start_hanging_writer(uri, tmp_path)
    dead, dead_tmp = _start_hanging_writer(uri, tmp_path)
    try:
        os.killpg(dead.pid, signal.SIGKILL)  # SIGKILL mid-write: nothing runs its cleanup
        dead.wait(timeout=30)
        for path in (live_tmp, dead_tmp):
            _age(path, 2 * 3600)  # both look abandoned by age: only the lock tells them apart
        assert live_tmp.exists() and dead_tmp.exists()

        lake.write_bytes(uri, b"new")  # the next write of the same file sweeps the dead writer's
        assert not dead_tmp.exists(), "the killed writer's temporary file was not swept"
        assert live_tmp.exists(), "a live writer's temporary file was removed"
        assert lake.sweep_stale_temp_files(tmp_path.as_uri(), older_than_seconds=0) == []
        assert live_tmp.exists() and lake.read_bytes(uri) == b"new"
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait(timeout=30)
    # Dead now: a tree sweep removes it, and nothing else.
    assert lake.sweep_stale_temp_files(tmp_path.as_uri()) == [live_tmp.as_uri()]
    assert sorted(os.listdir(lake.local_path(uri).parent)) == ["data.parquet"]


def test_recent_temp_files_are_left_to_their_writers(tmp_path: Path):
    """A temp file younger than the grace period is left alone even unlocked (the instant between
    mkstemp and its writer's lock); the tree sweep honours its own age."""
    uri = lake.join(tmp_path.as_uri(), "ds=2013-03-05", "data.parquet")
    lake.write_bytes(uri, b"x")
    fresh = lake.local_path(uri).parent / ".data.parquet.abcd1234.tmp"
    fresh.write_bytes(b"partial")
    lake.write_bytes(uri, b"y")
    assert fresh.exists()
    assert lake.sweep_stale_temp_files(tmp_path.as_uri()) == []  # an hour by default
    _age(fresh, lake.TEMP_GRACE_SECONDS + 5)
    other = lake.local_path(uri).parent / ".other.parquet.abcd1234.tmp"
    other.write_bytes(b"partial")
    _age(other, 3600)
    lake.write_bytes(uri, b"z")  # sweeps its own file's siblings only
    assert not fresh.exists() and other.exists()
    assert lake.sweep_stale_temp_files(tmp_path.as_uri()) == [other.as_uri()]
