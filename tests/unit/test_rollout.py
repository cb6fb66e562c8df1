"""The rollout guard's comparison (mlops.monitoring.rollout), on real metrics text and real flights.

* the parser reads the prediction service's own ``/metrics`` (the real ``ServiceMetrics``
  collectors, and a real uvicorn over loopback), 5xx counted as errors, 4xx not;
* intervals attribute each scrape interval to the one version that answered in it; a swap inside
  an interval counts for nobody; a restart counts from zero;
* ``histogram_quantile`` is Prometheus's (linear inside the bucket);
* online ROC-AUC: rank AUC equals scikit-learn's; a model worse on the same flights breaches, an
  equal one does not, small samples never do;
* the error-rate and latency rules need ``min_requests`` on each side;
* thresholds: params over environment over defaults; bad values name themselves.
"""

from __future__ import annotations

import math

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest

from mlops.monitoring import rollout
from mlops.monitoring.rollout import (
    Counts,
    Interval,
    RolloutParams,
    ServiceStats,
    Snapshot,
    compare_auc,
    histogram_quantile,
    intervals,
    judge,
    parse_metrics,
    service_stats,
)
from mlops.serving.metrics import ServiceMetrics
from tests.unit._frames import small_frame


def _text(metrics: ServiceMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def _serve(metrics: ServiceMetrics, version: str, n: int, latency: float, status: int = 200) -> None:
    """What the service records for ``n`` answered ``/predict`` requests of one flight each."""
    for _ in range(n):
        metrics.latency.labels("/predict").observe(latency)
        metrics.requests.labels("/predict", "POST", str(status)).inc()
        if status >= 400:
            metrics.errors.labels("/predict", str(status)).inc()
        else:
            metrics.predictions.labels(version, "on_time").inc()


def test_parse_reads_the_service_collectors():
    m = ServiceMetrics()
    m.served("3")
    _serve(m, "3", 90, 0.004)
    _serve(m, "3", 10, 0.2, status=500)
    _serve(m, "3", 7, 0.001, status=422)  # a bad request: not the model's error
    m.latency.labels("/health").observe(3.0)  # other paths do not count
    m.requests.labels("/health", "GET", "503").inc()
    snap = parse_metrics(_text(m), at=100.0, url="http://x/metrics")
    assert snap.served == "3"
    assert snap.total.requests == 107 and snap.total.errors == 10
    assert snap.predictions == {"3": 90.0}
    assert snap.total.buckets[math.inf] == 107
    assert snap.total.buckets[0.005] == 97  # 90 at 4 ms + 7 at 1 ms
    assert Snapshot.from_dict(snap.as_dict()) == snap


def test_parse_refuses_what_is_not_the_service():
    with pytest.raises(ValueError, match="mlops_serving_requests.*MLOPS_SERVING_METRICS_URL"):
        parse_metrics("# HELP up x\n# TYPE up gauge\nup 1\n", at=0, url="http://x/metrics")


def test_scrape_reads_a_real_service_over_http(tmp_path):
    from mlops.monitoring.rollout_check import scrape
    from tests.unit._serving_fake import FakeServer
    from tests.unit.test_serving_validation import FLIGHT

    srv = FakeServer(tmp_path)
    try:
        srv.wait_ready()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert all(c.post("/predict", json=FLIGHT).status_code == 200 for _ in range(12))
            assert c.post("/predict", json={"carrier": "UA"}).status_code == 422
        snap = scrape(f"{srv.url}/metrics")
    finally:
        srv.stop()
    assert snap.served == "7" and snap.predictions == {"7": 12.0}
    assert snap.total.requests == 13 and snap.total.errors == 0
    assert snap.total.buckets[math.inf] == 13


def _snap(at: float, predictions: dict[str, float], requests: float, errors: float, fast: float, slow: float):
    buckets = {0.005: fast, 0.05: fast, 0.5: fast + slow, math.inf: fast + slow}
    return Snapshot(at, "u", None, predictions, Counts(requests, errors, buckets))


def test_intervals_attribute_traffic_to_the_one_version_that_answered():
    snaps = [
        _snap(10, {"1": 300}, 300, 0, 300, 0),  # from the service's start: v1 only
        _snap(20, {"1": 500}, 500, 0, 500, 0),  # v1 only
        _snap(30, {"1": 600, "2": 50}, 650, 0, 650, 0),  # the swap: mixed
        _snap(40, {"1": 600, "2": 450}, 1050, 40, 650, 400),  # v2 only, slow and failing
        _snap(50, {"2": 100}, 110, 10, 0, 110),  # restart: counts from zero, v2 only
    ]
    spans = intervals(reversed(snaps))  # any order in, oldest first out
    assert [s.version for s in spans] == ["1", "1", None, "2", "2"]
    assert spans[2].versions == ("1", "2")
    assert spans[0].reset and spans[4].reset and not spans[3].reset
    assert spans[4].total.requests == 110 and spans[4].total.errors == 10
    v1, v2 = service_stats("1", spans), service_stats("2", spans)
    assert (v1.intervals, v1.requests, v1.errors) == (2, 500, 0)
    assert (v2.intervals, v2.requests, v2.errors) == (2, 510, 50)
    assert v1.p99_ms is not None and v1.p99_ms <= 5.0
    assert v2.p99_ms is not None and v2.p99_ms > 50.0
    # Evidence from before ``since`` (e.g. before a promotion) does not count.
    assert service_stats("2", spans, since=45).requests == 110


def test_histogram_quantile_is_prometheus_linear_interpolation():
    buckets = {0.01: 50.0, 0.02: 90.0, 0.1: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.015)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.02 + 0.08 * 0.9)
    assert histogram_quantile(0.99, {0.01: 0.0, math.inf: 5.0}) == 0.01  # in +Inf: highest finite bound
    assert histogram_quantile(0.99, {0.01: 0.0, math.inf: 0.0}) is None


def test_rank_auc_equals_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500).astype(float)
    p = np.round(rng.random(500), 2)  # ties
    assert rollout.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def _flights() -> pd.DataFrame:
    """Real June flights with their labels."""
    return small_frame("2013-06-10", "2013-06-14", frac=0.5)[["flight_id", "is_delayed"]]


def _scores(frame: pd.DataFrame, skill: float, seed: int) -> np.ndarray:
    """A probability that knows the label with ``skill`` (0: noise)."""
    rng = np.random.default_rng(seed)
    y = frame["is_delayed"].to_numpy(dtype=float)
    return 1 / (1 + np.exp(-(skill * (y - 0.5) * 4 + rng.normal(0, 1, len(y)))))


def test_a_worse_champion_on_the_same_flights_breaches():
    flights = _flights()
    assert len(flights) > 1000
    y = flights["is_delayed"].to_numpy(dtype=float)
    params = RolloutParams()
    bad = compare_auc(y, _scores(flights, 0.0, 1), _scores(flights, 0.6, 2), params)
    assert bad.enough and bad.drop is not None and bad.drop > 0.15 and bad.drop_lower > 0.1, bad
    verdict = judge("9", "8", params, auc=bad)
    assert verdict.breached and [b["kind"] for b in verdict.breaches] == ["online_roc_auc"]
    assert "v9" in verdict.reason and "v8" in verdict.reason

    same = compare_auc(y, _scores(flights, 0.6, 3), _scores(flights, 0.6, 4), params)
    assert abs(same.drop) < 0.03
    assert not judge("9", "8", params, auc=same).breached


def test_a_drop_on_noise_does_not_breach():
    flights = _flights().head(400)
    y = flights["is_delayed"].to_numpy(dtype=float)
    params = RolloutParams(max_auc_drop=0.0, min_labelled=300, min_class_rows=30)
    near = compare_auc(y, _scores(flights, 0.5, 5), _scores(flights, 0.52, 6), params)
    verdict = judge("9", "8", params, auc=near)
    if near.drop > 0:  # a small positive drop: the bootstrap must not call it real
        assert near.drop_lower <= 0 and not verdict.breached, near


def test_small_samples_never_breach():
    flights = _flights().head(120)
    y = flights["is_delayed"].to_numpy(dtype=float)
    few = compare_auc(y, _scores(flights, 0.0, 1), _scores(flights, 1.0, 2), RolloutParams())
    assert not few.enough and "need 300" in few.note
    verdict = judge("9", "8", RolloutParams(), auc=few)
    assert not verdict.breached and any("not enough evidence" in n for n in verdict.notes)


def _stats(version: str, requests: float, errors: float, p99: float) -> ServiceStats:
    return ServiceStats(version, 3, requests, errors, p99)


def test_error_rate_and_latency_rules():
    p = RolloutParams()
    ok = judge(
        "9", "8", p, champion_service=_stats("9", 1000, 3, 8.0), previous_service=_stats("8", 1000, 2, 7.0)
    )
    assert not ok.breached, ok.as_dict()
    worse = judge(
        "9", "8", p, champion_service=_stats("9", 1000, 30, 8.0), previous_service=_stats("8", 1000, 2, 7.0)
    )
    assert [b["kind"] for b in worse.breaches] == ["error_rate_increase"]
    failing = judge("9", None, p, champion_service=_stats("9", 1000, 80, 8.0))
    assert [b["kind"] for b in failing.breaches] == ["error_rate"]  # absolute: no @previous needed
    assert any("no @previous" in n for n in failing.notes)
    slow = judge(
        "9", "8", p, champion_service=_stats("9", 1000, 0, 40.0), previous_service=_stats("8", 1000, 0, 9.0)
    )
    assert [b["kind"] for b in slow.breaches] == ["p99_latency"]
    # 1 ms -> 2 ms is x2 but not 5 ms worse: no rollback for that.
    tiny = judge(
        "9", "8", p, champion_service=_stats("9", 1000, 0, 2.0), previous_service=_stats("8", 1000, 0, 1.0)
    )
    assert not tiny.breached
    # Five requests, all failed: not enough to judge.
    five = judge(
        "9", "8", p, champion_service=_stats("9", 5, 5, 900.0), previous_service=_stats("8", 1000, 0, 1.0)
    )
    assert not five.breached and any("need 200" in n for n in five.notes)


def test_thresholds_params_over_environment_over_defaults():
    env = {"MLOPS_ROLLOUT_MAX_AUC_DROP": "0.05", "MLOPS_ROLLOUT_MIN_REQUESTS": "500"}
    p = RolloutParams.from_mapping({"min_requests": 300, "window_days": None}, env=env)
    assert (p.max_auc_drop, p.min_requests, p.window_days) == (0.05, 300, 3)
    assert not RolloutParams.from_mapping({}, env={"MLOPS_ROLLOUT_ALLOW_ROLLBACK": "off"}).allow_rollback
    with pytest.raises(ValueError, match="min_requests=5: need at least 50"):
        RolloutParams.from_mapping({"min_requests": 5}, env={})
    with pytest.raises(ValueError, match="MLOPS_ROLLOUT_MAX_AUC_DROP='lots' is not a number"):
        RolloutParams.from_mapping({}, env={"MLOPS_ROLLOUT_MAX_AUC_DROP": "lots"})


def test_served_rows_keep_the_champions_latest_answer_per_flight():
    t = pd.Timestamp("2026-01-01", tz="UTC")
    log = pd.DataFrame(
        {
            "flight_id": ["a", "a", "b", "c", "d"],
            "model_version": ["9", "9", "8", "9", "9"],
            "served_at": [t, t + pd.Timedelta(1, "s"), t, t - pd.Timedelta(1, "h"), t],
            "request_id": ["r1", "r2", "r3", "r4", "r5"],
            "delay_probability": [0.1, 0.2, 0.3, 0.4, 0.5],
            "role": ["served", "served", "served", "served", "shadow"],
        }
    )
    rows = rollout.served_rows(log, "9", since=t - pd.Timedelta(1, "m"))
    assert rows["flight_id"].tolist() == ["a"] and rows["delay_probability"].tolist() == [0.2]


def test_interval_version_is_none_without_traffic():
    assert Interval(0, 1, (), Counts()).version is None


def test_per_model_metrics_tell_versions_apart_in_one_interval():
    """With the service's per-model metrics, a canary interval (both versions answering) is each
    version's own: shadow scores never count as answers."""
    m = ServiceMetrics()
    if not hasattr(m, "observe_model"):
        pytest.skip("this mlops.serving.metrics exports no per-model metrics (mlops_serving_model_*)")
    first = parse_metrics(_text(m), at=0.0, url="u")
    for _ in range(300):
        m.observe_model("champion", "8", "served", 1, 0.004)
        m.observe_model("challenger", "9", "shadow", 1, 0.5)  # off the response path: not an answer
    for _ in range(250):
        m.observe_model("challenger", "9", "served", 1, 0.060)
    m.model_errors.labels("challenger", "9", "served").inc(20)
    m.model_errors.labels("challenger", "9", "shadow").inc(99)
    later = parse_metrics(_text(m), at=10.0, url="u")
    assert later.by_version["9"].requests == 270 and later.by_version["9"].errors == 20
    spans = intervals([first, later])
    v8, v9 = service_stats("8", spans), service_stats("9", spans)
    assert (v8.requests, v8.errors) == (300, 0) and v8.p99_ms <= 5.0
    assert (v9.requests, v9.errors) == (270, 20) and 50.0 < v9.p99_ms <= 100.0  # its bucket: (50, 100] ms
    verdict = judge("9", "8", RolloutParams(), champion_service=v9, previous_service=v8)
    assert {b["kind"] for b in verdict.breaches} == {"error_rate", "p99_latency"}


def test_kept_scrapes_are_read_back_by_url_and_age(mlops_home):
    from mlops.config import get_settings
    from mlops.monitoring.rollout_check import read_snapshots, save_snapshot

    settings = get_settings()
    now = 1_800_000_000.0
    kept = [
        Snapshot(now - 40 * 86400, "http://a/metrics", "1", {"1": 5.0}, Counts(5, 0, {math.inf: 5})),
        Snapshot(now - 86400, "http://a/metrics", "1", {"1": 9.0}, Counts(9, 1, {math.inf: 9})),
        Snapshot(now, "http://b/metrics", "2", {"2": 3.0}, Counts(3, 0, {math.inf: 3})),
    ]
    for snap in kept:
        save_snapshot(snap, settings)
    assert read_snapshots(settings) == kept
    assert read_snapshots(settings, "http://a/metrics", after=now - 30 * 86400) == [kept[1]]
