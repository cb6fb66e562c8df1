"""Two promotions racing in real processes leave exactly one consistent champion: the better one.

Setup (real MLflow on SQLite): v1 weak is @champion; v2 (medium) and v3 (strong) are challengers
of the same as-of, both better than v1. Two OS processes start ``promote`` on the same instant
(a file barrier). Whatever the order, the lock must serialize them so that the final state is
@champion = v3 and @previous = the champion v3 replaced, and the two decisions form one chain.
Without the lock both would read v1 as champion and the last writer would win, possibly v2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mlops.config import CHAMPION, PREVIOUS
from mlops.models import registry
from mlops.training.split import split
from tests.conftest import use_home
from tests.integration._registry_helpers import STRONG, WEAK, frame, train_and_register

pytestmark = pytest.mark.slow

WORKER = r"""
import json, os, sys, time
from pathlib import Path
from mlops.models import registry
from mlops.training.dataset import load_training_set
version, holdout_uri, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
holdout = load_training_set(holdout_uri)
registry.predictor(version)  # warm up: import and load before the start line
while not go.exists():
    time.sleep(0.005)
started = time.time()
d = registry.promote(version, holdout, margin=0.002)
print("DECISION " + json.dumps({**d.as_dict(), "started": started}))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("mlops"))
        yield h


def test_racing_promotions_leave_the_better_champion(home, tmp_path):
    data = frame()
    weak, _ = train_and_register(data, **WEAK)
    medium, medium_result = train_and_register(data, n_candidates=1, n_estimators=6, max_depth=2)
    strong, strong_result = train_and_register(data, **STRONG, n_estimators=80)
    _, holdout = split(data, strong_result.window)
    assert registry.promote(weak, holdout, margin=0.0).promoted
    assert strong_result.metrics["roc_auc"] > medium_result.metrics["roc_auc"] + 0.002

    holdout_uri = (tmp_path / "holdout.parquet").as_uri()
    holdout.to_parquet(tmp_path / "holdout.parquet", index=False)
    go = tmp_path / "go"
    env = {**os.environ, "MLOPS_HOME": str(home)}
    procs = {
        v: subprocess.Popen(
            [sys.executable, "-c", WORKER, v, holdout_uri, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (medium, strong)
    }
    time.sleep(15)  # both have loaded their models and wait at the line
    go.touch()
    decisions = {}
    for v, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        line = next(line for line in out.splitlines() if line.startswith("DECISION "))
        decisions[v] = json.loads(line.removeprefix("DECISION "))

    # Both really raced: they started within a moment of each other.
    starts = sorted(d["started"] for d in decisions.values())
    assert starts[1] - starts[0] < 2.0
    # The lock serialized them: the critical sections do not overlap.
    spans = sorted((d["lock"]["acquired_at"], d["lock"]["released_at"]) for d in decisions.values())
    assert spans[0][1] <= spans[1][0], spans

    # Exactly one consistent champion, the better one.
    assert registry.alias_version(CHAMPION) == strong
    first, second = sorted(decisions.values(), key=lambda d: d["lock"]["acquired_at"])
    assert first["champion_before"] == weak
    assert second["champion_before"] == first["champion_after"]
    assert decisions[strong]["promoted"]
    if first["challenger"] == medium:  # medium won the lock: promoted over v1, then v3 over it
        assert first["promoted"] and registry.alias_version(PREVIOUS) == medium
    else:  # strong won the lock: medium then loses against it
        assert not decisions[medium]["promoted"] and registry.alias_version(PREVIOUS) == weak
    history = {h["version"]: h for h in registry.champion_history()}
    assert history[strong]["decision"] == "promoted"


def test_lock_is_exclusive_across_processes(home, tmp_path):
    """The file lock itself: a second process waits until the first releases it."""
    code = (
        "import time, json; from mlops.models.registry import promotion_lock\n"
        "with promotion_lock() as info:\n"
        "    time.sleep(2)\n"
        "print(json.dumps(info))\n"
    )
    env = {**os.environ, "MLOPS_HOME": str(home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    infos = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    a, b = sorted(infos, key=lambda i: i["acquired_at"])
    assert a["released_at"] <= b["acquired_at"]
    assert b["waited_s"] > 0.5
