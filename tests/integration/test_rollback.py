"""The rollout guard's check and rollback on a real MLflow registry, real flights and real labels.

A good model (v1) is champion; a bad one (v2, trained on shuffled labels) is promoted over it by
hand (``@previous`` = v1). Its answers for three March days are in the online prediction log,
the curated partitions of those days hold the labels. Then:

* the check finds the breach: v2's online ROC-AUC on the flights it answered is far below v1's on
  the same flights (v1 re-scored from the logged inputs), with the bootstrap's bound above zero;
* the rollback moves ``@champion`` back to v1 (``@previous`` takes v2), recorded in the audit trail
  as ``rollback-guard`` with the breach as the reason;
* a retry of the same run reports the rollback done without moving anything, another run with
  the same (now stale) verdict moves nothing: one breach, one rollback;
* the next check judges v1 on its own answers since the rollback (none yet): no breach, nothing moves;
* no ``@previous``: nothing to roll back to, said as such.

The scheduler run of the same story, with the real service, is tests/integration/test_rollback_scheduler.py.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pytest

from mlops import lake, layout
from mlops.config import CHAMPION, PREVIOUS, get_settings
from mlops.models import audit, registry
from mlops.monitoring import rollback, rollout_check
from mlops.monitoring.rollout import RolloutParams
from mlops.training.split import split
from tests.conftest import use_home
from tests.integration._registry_helpers import STRONG, frame, train_and_register
from tests.unit._frames import small_frame
from tests.unit.test_features import seed_curated

LIVE_DAYS = ["2013-03-16", "2013-03-17", "2013-03-18"]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp_path_factory.mktemp("mlops"))
        for var in ("MLOPS_SERVING_METRICS_URL", "AIRFLOW_CTX_DAG_RUN_ID"):
            mp.delenv(var, raising=False)
        settings = get_settings()
        data = frame()
        good, good_result = train_and_register(data, **STRONG)
        _, holdout = split(data, good_result.window)
        assert registry.promote(good, holdout, margin=0.0).promoted
        shuffled = data.assign(is_delayed=np.random.default_rng(7).permutation(data["is_delayed"].to_numpy()))
        bad, _ = train_and_register(shuffled, **STRONG)
        by_hand = registry.promote(bad, holdout, margin=-1.0, actor="manual:tester")  # the gate overruled
        assert by_hand.promoted and registry.alias_version(PREVIOUS) == good
        promoted_at = time.time()

        # The bad champion's answers for the live days, as the service logs them.
        live = small_frame(LIVE_DAYS[0], "2013-03-19", frac=1.0)
        served = live.drop(columns=["is_delayed"]).assign(
            delay_probability=registry.predictor(bad, settings)(live),
            model_version=bad,
            model_name="flight_delay_xgb",
            source="online",
            role="served",
            request_id=[uuid.uuid4().hex for _ in range(len(live))],
            served_at=pd.Timestamp.now(tz="UTC"),
        )
        for ds, part in served.groupby("ds"):
            uri = lake.join(layout.predictions_online_dir(settings.lake_uri, str(ds)), "part-test-1.parquet")
            lake.write_parquet(uri, part.reset_index(drop=True))
        seed_curated(LIVE_DAYS, settings)  # the labels arrive
        yield {"settings": settings, "good": good, "bad": bad, "promoted_at": promoted_at, "mp": mp}


def test_the_guard_rolls_the_bad_champion_back_once(story):
    settings, good, bad = story["settings"], story["good"], story["bad"]
    params = RolloutParams(window_days=3)
    summary = rollout_check.check(LIVE_DAYS[-1], params, settings)
    verdict = summary["verdict"]
    print("verdict:", verdict)
    assert (verdict["champion"], verdict["previous"]) == (bad, good)
    assert summary["since"] is not None and summary["since"] >= story["promoted_at"] - 5
    assert summary["evidence"]["labelled_rows"] > 1500
    assert verdict["breached"] and [b["kind"] for b in verdict["breaches"]] == ["online_roc_auc"]
    auc = verdict["auc"]
    assert auc["champion"] < 0.6 < auc["previous"] and auc["drop_lower"] > 0.02, auc
    assert any("MLOPS_SERVING_METRICS_URL" in n for n in verdict["notes"])

    story["mp"].setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__guard1")  # what Airflow sets for the task
    done = rollback.roll_back(verdict, settings, run_id="manual__guard1")
    assert done.rolled_back and not done.repeated, done
    assert registry.alias_version(CHAMPION) == good and registry.alias_version(PREVIOUS) == bad
    moves = [e for e in audit.read(settings=settings) if e.actor == rollback.ACTOR]
    assert [(e.alias, e.from_version, e.to_version) for e in moves] == [
        (CHAMPION, bad, good),
        (PREVIOUS, good, bad),
    ]
    assert "online ROC-AUC" in moves[0].reason and moves[0].context["dag_run_id"] == "manual__guard1"

    again = rollback.roll_back(verdict, settings, run_id="manual__guard1")  # a retry of that task
    assert again.rolled_back and again.repeated
    other = rollback.roll_back(verdict, settings, run_id="manual__guard2")  # another run, same breach
    assert not other.rolled_back and "nothing moved" in other.reason
    assert len([e for e in audit.read(settings=settings) if e.actor == rollback.ACTOR]) == 2
    assert registry.alias_version(CHAMPION) == good

    subject, body = rollback.announcement(verdict, done)
    assert subject == f"[mlops] rollback flight_delay_xgb: v{bad} -> v{good}"
    assert "online ROC-AUC" in body

    # The restored champion is judged on its own answers since the rollback: none yet.
    after = rollout_check.check(LIVE_DAYS[-1], params, settings)["verdict"]
    assert (after["champion"], after["previous"]) == (good, bad) and not after["breached"], after
    with pytest.raises(rollback.NothingToRollBack, match="no breach"):
        rollback.roll_back(after, settings, run_id="manual__guard3")


def test_no_previous_means_nothing_to_roll_back_to(story):
    verdict = {"breached": True, "champion": "5", "previous": None, "reason": "error rate 12% > 5%"}
    with pytest.raises(rollback.NothingToRollBack, match="no @previous version to roll back to"):
        rollback.roll_back(verdict, story["settings"], run_id="x")
