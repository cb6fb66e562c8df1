"""mlops.monitoring: sampling, the Evidently check, thresholds, the storm guard, history, and the
request metadata handed to train_model (no Airflow, no MLflow, no Feast)."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mlops.airflow import events
from mlops.monitoring import frames, guard, history, report, statistics
from mlops.monitoring.params import DriftParams, window_days
from tests.unit._frames import small_frame

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def predict(frame: pd.DataFrame) -> np.ndarray:
    """A stand-in model: the carrier's 7-day delayed rate, squashed a little (deterministic)."""
    rate = pd.to_numeric(frame["carrier_delayed_rate_7d"], errors="coerce").fillna(0.2).to_numpy()
    return np.clip(0.05 + 0.9 * rate, 0.01, 0.99)


@pytest.fixture(scope="module")
def winter() -> pd.DataFrame:
    return small_frame("2013-01-08", "2013-03-01", frac=0.3)


@pytest.fixture(scope="module")
def late_winter() -> pd.DataFrame:
    return small_frame("2013-03-01", "2013-03-08", frac=1.0)


@pytest.fixture(scope="module")
def summer() -> pd.DataFrame:
    return small_frame("2013-07-01", "2013-07-08", frac=1.0)


#: Thresholds for the stand-in model and the 11 features of these frames. Its 7-day delay rates
#: vary week to week inside winter (normed Wasserstein ~0.3) and jump in summer (~2-3).
PARAMS = DriftParams(
    sample_size=3000,
    min_current_rows=200,
    min_labelled_rows=200,
    num_threshold=0.5,
    prediction_threshold=0.5,
    max_calibration_error=0.1,
    max_auc_drop=0.1,
)


# --------------------------------------------------------------------------------------------------
# Params, windows, sampling
# --------------------------------------------------------------------------------------------------


def test_params_from_mapping_casts_and_ignores_unknown():
    p = DriftParams.from_mapping(
        {
            "window_days": "14",
            "drift_share": "0.5",
            "allow_retrain": "false",
            "ignore_features": "month, weekday",
            "ds": "2013-07-01",
            "bogus": 1,
            "seed": None,
        }
    )
    assert p.window_days == 14 and p.drift_share == 0.5 and p.allow_retrain is False
    assert p.ignore_features == ("month", "weekday") and p.seed == DriftParams().seed
    assert DriftParams.from_mapping({"ignore_features": ["month"]}).ignore_features == ("month",)
    with pytest.raises(ValueError, match="drift_share"):
        DriftParams.from_mapping({"drift_share": 0})


def test_window_days_end_with_ds():
    assert window_days("2013-03-02", 3) == ["2013-02-28", "2013-03-01", "2013-03-02"]


def test_sampling_is_bounded_seeded_and_ordered():
    frame = pd.DataFrame({"x": range(10_000)})
    a, b = statistics.sample_rows(frame, 500, 7), statistics.sample_rows(frame, 500, 7)
    assert len(a) == 500 and a.equals(b)
    assert a["x"].is_monotonic_increasing
    assert not a.equals(statistics.sample_rows(frame, 500, 8))
    assert len(statistics.sample_rows(frame.head(30), 500, 7)) == 30


def test_calibration_of_a_calibrated_and_a_shifted_model():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, 20_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    good = statistics.calibration(y, p)
    assert good["ece"] < 0.02 and abs(good["gap"]) < 0.01 and len(good["bins"]) == 10
    bad = statistics.calibration(y, np.clip(p - 0.15, 0.0, 1.0))
    assert bad["ece"] > 0.1 and bad["gap"] < -0.1


# --------------------------------------------------------------------------------------------------
# The check (Evidently)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stable(winter, late_winter):
    return statistics.run_check(
        winter, late_winter, PARAMS, predict=predict, reference_holdout_start="2013-02-15"
    )


@pytest.fixture(scope="module")
def drifting(winter, summer):
    return statistics.run_check(winter, summer, PARAMS, predict=predict, reference_holdout_start="2013-02-15")


def test_a_stable_window_breaches_nothing(stable, winter, late_winter):
    s = stable.summary
    assert not s["breached"], s["breaches"]
    assert s["drift_share"] < PARAMS.drift_share
    # Both sides sampled to the cap, totals recorded.
    assert (s["n_reference"], s["n_reference_total"]) == (PARAMS.sample_size, len(winter))
    assert (s["n_current"], s["n_current_total"]) == (PARAMS.sample_size, len(late_winter))
    assert "month" not in s["feature_scores"] and s["ignored_features"] == ["month"]


def test_summer_against_a_winter_reference_drifts(drifting, stable):
    s = drifting.summary
    assert s["breached"]
    kinds = {b["kind"] for b in s["breaches"]}
    assert kinds & {"data_drift", "prediction_drift", "calibration"}, s["breaches"]
    assert s["prediction_drift"] > stable.summary["prediction_drift"]
    assert "carrier_delayed_rate_7d" in s["drifted_features"]
    # Scores use fixed methods, so they are comparable across days and sample sizes.
    assert {v["method"] for v in s["feature_scores"].values()} <= {"wasserstein", "jensenshannon"}
    json.dumps(s)  # the summary travels as XCom and JSON


def test_roc_auc_comes_from_evidently_and_matches_sklearn(winter, summer):
    from sklearn.metrics import roc_auc_score

    result = statistics.run_check(
        winter, summer, PARAMS, predict=predict, reference_holdout_start="2013-02-15"
    )
    cur = statistics.sample_rows(summer, PARAMS.sample_size, PARAMS.seed)
    y, p = cur["is_delayed"], predict(cur)
    assert result.summary["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    assert result.summary["n_labelled"] == len(cur)


def test_unknown_labels_are_left_out_of_performance(winter, summer):
    cur = summer.head(1000).copy()  # below the sample cap: every row is kept
    cur["is_delayed"] = cur["is_delayed"].astype("float64")
    cur.loc[cur.index[: len(cur) - 150], "is_delayed"] = np.nan
    s = statistics.run_check(winter, cur, PARAMS, predict=predict).summary
    assert s["n_labelled"] == 150 and s["roc_auc"] is None  # below min_labelled_rows: not judged
    assert any("labelled" in n for n in s["notes"])
    assert not any(b["kind"] in ("performance", "calibration") for b in s["breaches"])


def test_a_feature_missing_in_every_current_row_counts_as_drifted(winter, late_winter):
    cur = late_winter.copy()
    cur["prev_leg_dep_delay"] = np.nan
    s = statistics.run_check(winter, cur, PARAMS, predict=predict).summary
    assert s["feature_scores"]["prev_leg_dep_delay"]["drifted"]
    assert s["feature_scores"]["prev_leg_dep_delay"]["method"] == "null in every current row"


def test_the_html_report_holds_summary_and_evidently_sections(drifting):
    html = report.render_html(
        drifting, {"ds": "2013-07-07", "champion_version": "3", "champion_as_of": "2013-03-01"}
    )
    assert "Drift check ds=2013-07-07" in html and "drawDashboard" in html
    assert html.count("window.drawDashboard(") == 1  # one Evidently bundle for all sections
    doc = report.snapshots_json(drifting)
    assert doc["feature_drift"]["metrics"] and doc["performance"]["metrics"]


# --------------------------------------------------------------------------------------------------
# The storm guard
# --------------------------------------------------------------------------------------------------


def req(ds: str, **kw) -> dict:
    base = {
        "ds": ds,
        "breached": True,
        "data_version": f"data-{ds}",
        "signature": f"sig-{ds}",
        "champion_version": "1",
        "champion_as_of": "2013-03-01",
        "window_start": ds,
        "window_end": ds,
        "drifted_features": {"wx_temp": 0.8},
        "breaches": [{"kind": "data_drift", "value": 0.5, "threshold": 0.3, "message": "m"}],
        "reason": "5 of 10 features drifted",
        "report_uri": f"file:///lake/reports/drift/ds={ds}/report.html",
    }
    return {**base, **kw}


def entry(ds: str, decision: str = "requested", **kw) -> dict:
    return {
        "ds": ds,
        "decision": decision,
        "run_id": f"run-{ds}",
        "data_version": f"data-{ds}",
        "signature": f"sig-{ds}",
        **kw,
    }


P = DriftParams(cooldown_days=7)


def test_guard_requests_a_fresh_breach():
    ok, reasons, own = guard.decide(req("2013-07-10"), [], P, run_id="r", active_training_runs=0)
    assert ok and reasons == [] and own is None


@pytest.mark.parametrize(
    ("check", "ledger", "active", "expected"),
    [
        (req("2013-07-10", breached=False), [], 0, "no threshold breached"),
        (req("2013-07-10"), [entry("2013-07-05")], 0, "cooldown after request"),
        (req("2013-07-10"), [entry("2013-07-15")], 0, "cooldown after request"),  # backfills run out of order
        (req("2013-07-10", champion_as_of="2013-07-06"), [], 0, "cooldown after promotion"),
        (req("2013-07-10", champion_as_of="2013-08-01"), [], 0, "stale check"),
        (
            req("2013-07-10", signature="sig-x"),
            [entry("2013-06-01", signature="sig-x")],
            0,
            "same drift signature",
        ),
        (req("2013-07-10"), [entry("2013-07-10", "suppressed", run_id="other")], 0, "already decided"),
        (req("2013-07-10"), [], 1, "queued or running"),
        (req("2013-07-10"), [entry("2013-07-01")], 0, None),  # 9 days: outside the cooldown
    ],
)
def test_guard_rules(check, ledger, active, expected):
    ok, reasons, _ = guard.decide(check, ledger, P, run_id="r", active_training_runs=active)
    if expected is None:
        assert ok and not reasons
    else:
        assert not ok and any(expected in r for r in reasons), reasons


def test_guard_re_emits_on_a_retry_of_the_same_run():
    ledger = [entry("2013-07-10", run_id="r")]
    ok, reasons, own = guard.decide(req("2013-07-10"), ledger, P, run_id="r", active_training_runs=1)
    assert ok and own is ledger[0]


def test_guard_can_be_switched_off():
    ok, reasons, _ = guard.decide(
        req("2013-07-10"), [], DriftParams(allow_retrain=False), run_id="r", active_training_runs=0
    )
    assert not ok and "allow_retrain" in reasons[0]


def test_two_detections_in_the_cooldown_request_once_and_record_why(mlops_home):
    first = guard.guarded_request(req("2013-07-09"), P, run_id="a", active_training_runs=lambda: 0)
    second = guard.guarded_request(req("2013-07-10"), P, run_id="b", active_training_runs=lambda: 0)
    assert first.requested and not second.requested
    assert "cooldown after request" in second.reason and "ds=2013-07-09" in second.reason
    extra = first.extra
    assert extra["drifted_features"] == {"wx_temp": 0.8} and extra["report_uri"].endswith("report.html")
    assert extra["window_start"] == "2013-07-09" and extra["as_of"] == "2013-07-10" and extra["reason"]
    table = history.retrain_requests()
    assert table[["ds", "decision"]].values.tolist() == [
        ["2013-07-09", "requested"],
        ["2013-07-10", "suppressed"],
    ]
    assert "cooldown" in table.iloc[1]["reason"]
    # A retry of run "a" re-emits its own request; a different run for the same day does not.
    assert guard.guarded_request(req("2013-07-09"), P, run_id="a", active_training_runs=lambda: 0).requested
    assert not guard.guarded_request(
        req("2013-07-09"), P, run_id="c", active_training_runs=lambda: 0
    ).requested


def _concurrent_request(args):
    home, ds = args
    import os

    os.environ["MLOPS_HOME"] = home
    from mlops.monitoring import guard

    return guard.guarded_request(req(ds), P, run_id=f"run-{ds}", active_training_runs=lambda: 0).requested


def test_concurrent_checks_request_exactly_once(mlops_home):
    days = ["2013-07-08", "2013-07-09", "2013-07-10", "2013-07-11"]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_concurrent_request, [(str(mlops_home), d) for d in days])
    assert sum(results) == 1, results
    ledger = history.read_ledger()
    assert sorted(e["ds"] for e in ledger) == days
    assert [e["decision"] for e in ledger].count("requested") == 1


def test_an_s3_lake_requires_a_shared_lock(monkeypatch, mlops_home):
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://lake/prefix")
    monkeypatch.delenv("MLOPS_LOCK_URL", raising=False)
    with pytest.raises(RuntimeError, match="MLOPS_LOCK_URL=postgresql"), guard.guard_lock():
        pass


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------


def test_history_has_one_row_per_day_and_reruns_replace_it(mlops_home, stable, drifting):
    ctx = {"champion_version": "1", "report_uri": "file:///r.html"}
    history.upsert_history(history.history_row("2013-07-10", drifting.summary, ctx))
    history.upsert_history(history.history_row("2013-03-07", stable.summary, ctx))
    history.upsert_history(history.history_row("2013-07-10", drifting.summary, ctx))
    h = history.drift_history()
    assert h["ds"].tolist() == ["2013-03-07", "2013-07-10"]
    for col in (
        "ds",
        "drift_share",
        "drift_detected",
        "prediction_drift",
        "roc_auc",
        "n_reference",
        "n_current",
        "report_uri",
    ):
        assert col in h.columns
    assert h.iloc[1]["retrain_decision"] == "pending" and h.iloc[0]["retrain_decision"] == "none"
    guard.guarded_request(req("2013-07-10"), P, run_id="a", active_training_runs=lambda: 0)
    assert history.drift_history().iloc[1]["retrain_decision"] == "requested"


def test_a_suppressed_rerun_keeps_the_days_request_visible(mlops_home, drifting):
    """A rerun of a day that requested retraining (a new check run, same data) is suppressed; the
    history row of that day still says ``requested`` (the event was emitted, training started) and
    names the suppressed rerun; the ledger keeps both decisions, one per check run."""
    ctx = {"champion_version": "1", "report_uri": "file:///r.html"}
    history.upsert_history(history.history_row("2013-07-10", drifting.summary, ctx))
    assert guard.guarded_request(req("2013-07-10"), P, run_id="a", active_training_runs=lambda: 0).requested
    # The rerun's check replaces the day's metrics (its row would say "pending")...
    history.upsert_history(history.history_row("2013-07-10", drifting.summary, ctx))
    assert history.drift_history().iloc[0]["retrain_decision"] == "requested"
    # ...and its guard suppresses it: the day still shows the request, and why the rerun did not.
    rerun = guard.guarded_request(req("2013-07-10"), P, run_id="b", active_training_runs=lambda: 0)
    assert not rerun.requested and "already decided" in rerun.reason
    row = history.drift_history().iloc[0]
    assert len(history.drift_history()) == 1
    assert row["retrain_decision"] == "requested", row.to_dict()
    assert "requested by run a" in row["retrain_reason"] and "run b" in row["retrain_reason"]
    assert history.retrain_requests()[["run_id", "decision"]].values.tolist() == [
        ["a", "requested"],
        ["b", "suppressed"],
    ]
    # A day whose checks were all suppressed shows its latest decision.
    history.upsert_history(history.history_row("2013-07-12", drifting.summary, ctx))
    guard.guarded_request(req("2013-07-12"), P, run_id="c", active_training_runs=lambda: 0)
    last = history.drift_history().iloc[-1]
    assert last["retrain_decision"] == "suppressed" and "cooldown after request" in last["retrain_reason"]


def test_empty_history_and_requests_have_the_page_columns(mlops_home):
    assert {
        "ds",
        "drift_share",
        "drift_detected",
        "prediction_drift",
        "roc_auc",
        "n_reference",
        "n_current",
        "report_uri",
    } <= set(history.drift_history().columns)
    assert {"ds", "decision", "reason"} <= set(history.retrain_requests().columns)


# --------------------------------------------------------------------------------------------------
# The current window from batch predictions, and labels that had not arrived
# --------------------------------------------------------------------------------------------------


def test_current_window_reads_batch_predictions_and_hides_late_labels(mlops_home):
    from mlops import lake, layout
    from mlops.config import get_settings
    from mlops.features import compute
    from mlops.serving import scoring
    from tests.unit._frames import curated

    days = ["2013-07-06", "2013-07-07"]
    cur = curated()
    for ds in days:
        part = cur[cur["ds"] == ds].reset_index(drop=True)
        lake.write_parquet(layout.curated_file(get_settings().lake_uri, ds), part)
        feats = pd.DataFrame({c: part[c] if c in part else np.nan for c in compute.MODEL_FEATURES})
        preds = scoring.assemble(
            part,
            feats,
            np.full(len(part), 0.3),
            threshold=0.5,
            model_name="m",
            model_version="4",
            source="batch",
        )
        lake.write_parquet(scoring.predictions_uri(ds), preds)
    params = DriftParams(window_days=2, sample_size=100_000)
    frame, info = frames.current_frame("2013-07-07", params, {"version": "4"})
    assert info["predictions_source"] == {"batch_predictions": len(frame), "scored_in_task": 0}
    assert info["rows_total"] == len(frame) and set(frame["ds"]) == set(days)
    assert (frame["prediction"] == 0.3).all()
    both = cur[cur["ds"].isin(days)]
    late = (compute.arrival_known_ts(both) > compute.local_midnight("2013-07-08")).sum()
    assert late > 0  # evening flights landing after midnight (+ taxi margin)
    assert frame["is_delayed"].notna().sum() == both["is_delayed"].notna().sum() - late


# --------------------------------------------------------------------------------------------------
# For train_model: the event metadata the guard writes is what mlops.airflow.events reads
# --------------------------------------------------------------------------------------------------


def test_the_request_extra_round_trips_into_the_training_run_tags():
    extra = guard.request_extra(req("2013-07-10", mlflow_run_id="abc"), {"request_id": "2013-07-10:d:s"})
    event = SimpleNamespace(
        extra=extra,
        timestamp="2026-01-01T00:00:00+00:00",
        source_dag_id="monitor_drift",
        source_run_id="scheduled__x",
        asset=SimpleNamespace(name="retrain_request"),
    )
    tags = events.request_context([event])
    assert tags["retrain.reason"] == "5 of 10 features drifted"
    assert tags["retrain.report_uri"].endswith("ds=2013-07-10/report.html")
    assert json.loads(tags["retrain.drifted_features"]) == {"wx_temp": 0.8}
    assert tags["retrain.window"] == "2013-07-10..2013-07-10" and tags["retrain.as_of"] == "2013-07-11"
    assert tags["retrain.request_id"] == "2013-07-10:d:s" and tags["retrain.events"] == "1"


def test_importing_monitoring_is_cheap():
    code = (
        "import sys, json; import mlops.monitoring.check, mlops.monitoring.guard, mlops.monitoring.params;"
        "print(json.dumps(sorted(m for m in ('pandas','evidently','mlflow','feast','xgboost','airflow') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_drift_params_read_booleans_like_train_params():
    """One reading of booleans (mlops.params): "on" was false here and true for TrainParams."""
    assert DriftParams.from_mapping({"allow_retrain": "on"}).allow_retrain is True
    assert DriftParams.from_mapping({"allow_retrain": "off"}).allow_retrain is False
    with pytest.raises(ValueError, match="allow_retrain='maybe' is not a boolean"):
        DriftParams.from_mapping({"allow_retrain": "maybe"})


def test_imports_run_one_way_from_the_check_down_to_its_parts():
    """No part of mlops.monitoring imports the sequence (check) back, and guard is not imported by
    the parts it uses (history, frames, statistics, params, report)."""
    import ast

    package = REPO / "include" / "mlops" / "monitoring"
    imported = {}
    for path in package.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("mlops.monitoring")
            ):
                names |= {node.module.rsplit(".", 1)[-1]} if node.module != "mlops.monitoring" else set()
                names |= {a.name for a in node.names} if node.module == "mlops.monitoring" else set()
            elif isinstance(node, ast.Import):
                names |= {
                    a.name.rsplit(".", 1)[-1] for a in node.names if a.name.startswith("mlops.monitoring.")
                }
        imported[path.stem] = names
    assert all("check" not in names for stem, names in imported.items() if stem != "check"), imported
    for part in ("history", "frames", "statistics", "params", "report", "mlflow_runs"):
        assert "guard" not in imported[part], (part, imported[part])
