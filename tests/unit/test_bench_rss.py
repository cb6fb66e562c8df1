"""benchmarks.harness's RSS helpers (every benchmark samples peak RSS through them), in a fresh
process: its own peak, now and its children's, against allocations of a known size."""

from __future__ import annotations

import json
import subprocess
import sys

from mlops.config import REPO_ROOT

CHILD = """
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from benchmarks.harness import children_peak_rss_mib, peak_rss_mib, rss_mib

out = {"start": rss_mib(), "peak_start": peak_rss_mib()}
block = bytearray(300 * 2**20)  # 300 MiB, touched
out["held"] = rss_mib()
del block
out["freed"], out["peak"] = rss_mib(), peak_rss_mib()
subprocess.run([sys.executable, "-c", "b = bytearray(200 * 2**20)"], check=True)
out["children_peak"] = children_peak_rss_mib()
with open("/proc/self/status") as status:
    out["status"] = {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in status)
                     if k in ("VmHWM", "VmRSS")}
print(json.dumps(out))
"""


def test_peak_now_and_children_in_mib():
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO_ROOT)], capture_output=True, text=True, check=True, timeout=120
    )
    out = json.loads(done.stdout.splitlines()[-1])
    assert 5 < out["start"] <= out["peak_start"] < 1000, out
    assert out["held"] - out["start"] > 290, out  # the 300 MiB block is resident
    # The peak keeps it once freed (the kernel's counters are batched: a few pages either way).
    assert out["peak"] > out["held"] - 2 and out["held"] > out["freed"] + 250, out
    assert out["status"]["VmHWM"] == out["peak"]  # it is /proc's VmHWM, in MiB
    assert abs(out["status"]["VmRSS"] - out["freed"]) < 50
    assert out["children_peak"] > 200, out  # the child's own peak (bytearray of 200 MiB)


def test_another_process_and_a_gone_one():
    import os

    import pytest

    sys.path.insert(0, str(REPO_ROOT))
    try:
        from benchmarks.harness import peak_rss_mib, rss_mib
    finally:
        sys.path.remove(str(REPO_ROOT))
    # The child says when its block is fully touched: before that its RSS still grows, and a peak
    # read before an RSS read could come out lower.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; b = bytearray(100 * 2**20); print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert peak_rss_mib(proc.pid) >= rss_mib(proc.pid) >= 100
        assert peak_rss_mib(proc.pid) != peak_rss_mib(os.getpid()) or proc.pid == os.getpid()
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(ProcessLookupError, match=f"process {proc.pid} has exited"):
        peak_rss_mib(proc.pid)
