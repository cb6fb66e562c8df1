"""Shadow and canary in the prediction service (issue 18), on the fake models of test_serving_validation.

* the canary share: validated (0-100, a clear error otherwise, flag and environment), sticky by
  flight, and close to the asked share over many flights;
* shadow: every flight answered by the champion is also scored by ``@challenger`` off the response
  path and logged under the same ``prediction_id`` (``role`` served / shadow); a challenger that
  raises or is slow never fails or delays an answer; behind, jobs are dropped and counted;
* canary: the flights in the share are answered by the challenger (``served_by`` in the answer,
  ``alias`` in the log), the champion scores them in shadow; a failing canary falls back;
* metrics per alias, version and role;
* over real HTTP (uvicorn on loopback, ``tests/unit/_serving_fake.py``): the same, end to end.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops import lake
from mlops.config import CHALLENGER, get_settings
from mlops.serving import rollout, scoring
from mlops.serving.app import ServeConfig, create_app
from mlops.serving.logger import PredictionLogger
from mlops.serving.model import ModelHolder
from mlops.serving.online import FlightRequest
from tests.unit._serving_fake import FakeServer
from tests.unit.test_serving_validation import FLIGHT, FakeReader, fake_model

CARRIERS = ["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN", "VX", "9E"]


def _flights(n: int) -> list[dict]:
    """``n`` distinct, valid flights (carriers x numbers x a few days)."""
    out = []
    for i in range(n):
        day = datetime(2013, 6, 10, 12, tzinfo=UTC) + timedelta(days=i % 5)
        out.append(
            {
                "carrier": CARRIERS[i % len(CARRIERS)],
                "flight": 1 + i // 10,
                "origin": "EWR",
                "dest": "IAH",
                "sched_dep_ts": (day + timedelta(minutes=i % 600)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tailnum": "N14228",
            }
        )
    return out


def _service(tmp_path, *, challenger="8", fails=False, delay=0.0, log=True, **cfg):
    """An app on fake v7 @champion and a fake @challenger, its service, and its logger."""
    settings = get_settings({"MLOPS_HOME": str(tmp_path)})
    holder = ModelHolder(resolve=lambda: "7", load=lambda v: fake_model(v), poll_seconds=3600)
    rival = ModelHolder(
        alias=CHALLENGER,
        resolve=lambda: challenger,
        load=lambda v: fake_model(v, offset=1.0, delay=delay, fails=fails),
        poll_seconds=3600,
    )
    logger = PredictionLogger(settings.lake_uri, flush_seconds=3600) if log else None
    config = ServeConfig(poll_seconds=3600, log_predictions=False, settings=settings, **cfg)
    app = create_app(config, holder=holder, reader_factory=FakeReader, logger=logger, challenger=rival)
    return app, app.state.service, logger


def _logged(service, logger) -> pd.DataFrame:
    assert service.shadow is None or service.shadow.wait_idle(30)
    logger.flush()
    files = list(lake.list_uris(lake.join(logger.lake_uri, "predictions_online")))
    return pd.concat([lake.read_parquet(f) for f in files], ignore_index=True)


# --------------------------------------------------------------------------------------------------
# The canary share
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("150", "out of range"),
        ("-1", "out of range"),
        ("ten", "not a number"),
        ("nan", "out of range"),
        ("", "not a number"),
    ],
)
def test_canary_percent_is_validated(value, words):
    with pytest.raises(ValueError, match=words) as err:
        rollout.parse_canary_percent(value)
    assert "--canary-percent" in str(err.value) and "between 0 and 100" in str(err.value)


def test_canary_percent_flag_and_environment():
    assert rollout.parse_canary_percent("12.5") == 12.5
    assert rollout.parse_canary_percent("10%") == 10.0
    assert rollout.canary_percent_from_env({}) == 0.0
    assert rollout.canary_percent_from_env({rollout.CANARY_ENV: " 25 "}) == 25.0
    with pytest.raises(ValueError, match=rollout.CANARY_ENV):
        rollout.canary_percent_from_env({rollout.CANARY_ENV: "1e3"})


def test_serve_refuses_a_bad_canary_percent(monkeypatch, caplog):
    from mlops.cli import main

    assert main(["serve", "--canary-percent", "101"]) == 2
    assert "--canary-percent='101' is out of range" in caplog.text
    monkeypatch.setenv(rollout.CANARY_ENV, "half")
    assert main(["serve"]) == 2
    assert "MLOPS_CANARY_PERCENT='half' is not a number" in caplog.text


def test_canary_is_sticky_by_flight_and_near_the_share():
    flights = [
        FlightRequest(c, n, o, "IAH", datetime(2013, 6, d, 15, tzinfo=UTC), None)
        for c in CARRIERS
        for n in range(1, 201)
        for o in ("EWR", "JFK")
        for d in (11, 12, 13, 14, 15)
    ]  # 20,000 flights
    share = sum(rollout.in_canary(f, 10) for f in flights) / len(flights)
    assert 0.09 < share < 0.11, share
    again = FlightRequest("UA", 7, "EWR", "IAH", datetime(2013, 6, 12, 15, tzinfo=UTC), "N1")
    first = rollout.canary_bucket(again)
    # Same flight (id: local day, carrier, number, origin), another departure minute and tail: same bucket.
    later = FlightRequest("UA", 7, "EWR", "ORD", datetime(2013, 6, 12, 19, 40, tzinfo=UTC), None)
    assert rollout.canary_bucket(later) == first
    assert not any(rollout.in_canary(f, 0) for f in flights[:500])
    assert all(rollout.in_canary(f, 100) for f in flights[:500])


# --------------------------------------------------------------------------------------------------
# Shadow
# --------------------------------------------------------------------------------------------------


def test_shadow_scores_the_challenger_under_the_same_prediction_id(tmp_path):
    app, service, logger = _service(tmp_path)
    flights = _flights(6)
    # Deltas: once anything imported feast.feature_server, prometheus_client runs in multiprocess
    # mode (Feast sets PROMETHEUS_MULTIPROCESS_DIR at import), where a process's counters of the same
    # name and labels share one value across registries, i.e. across this module's services.
    served_counter = service.metrics.model_requests.labels("champion", "7", "served")
    shadow_counter = service.metrics.model_predictions.labels(CHALLENGER, "8", "shadow")
    served_before, shadow_before = served_counter._value.get(), shadow_counter._value.get()
    with TestClient(app) as client:
        answers = [client.post("/predict", json=f) for f in flights[:3]]
        batch = client.post("/predict", json={"flights": flights[3:]})
        metrics = client.get("/metrics").text
        health = client.get("/health").json()
    assert all(a.status_code == 200 for a in [*answers, batch])
    served = [a.json()["predictions"][0] for a in answers] + batch.json()["predictions"]
    assert {(p["served_by"]["alias"], p["served_by"]["version"]) for p in served} == {("champion", "7")}
    assert all(a.headers["x-model-version"] == "7" for a in answers)
    frame = _logged(service, logger)
    assert len(frame) == 12 and list(frame.columns) == scoring.ONLINE_COLUMNS
    pairs = frame.pivot(index="prediction_id", columns="role", values="alias")
    assert len(pairs) == 6 and (pairs["served"] == "champion").all() and (pairs["shadow"] == CHALLENGER).all()
    shadow = frame[frame["role"] == "shadow"].set_index("prediction_id")
    champion = frame[frame["role"] == "served"].set_index("prediction_id")
    assert set(shadow["model_version"]) == {"8"} and set(champion["model_version"]) == {"7"}
    # The shadow score is the challenger's on the same features (offset 1.0: higher than the champion's).
    want = fake_model("8", offset=1.0).predict_rows(
        [{c: champion.loc[i, c] for c in scoring.FEATURE_COLUMNS} for i in shadow.index]
    )
    assert shadow["delay_probability"].tolist() == pytest.approx(want.tolist())
    assert (shadow["delay_probability"] > champion.loc[shadow.index, "delay_probability"]).all()
    assert (shadow["request_id"] == champion.loc[shadow.index, "request_id"]).all()
    served_line = 'mlops_serving_model_requests_total{alias="champion",model_version="7",role="served"}'
    assert served_counter._value.get() - served_before == 4  # 3 + 1 batch
    assert served_line in metrics, [line for line in metrics.splitlines() if "model_requests" in line]
    shadow_counted = (
        'mlops_serving_model_predictions_total{alias="challenger",model_version="8",role="shadow"}'
    )
    assert shadow_counter._value.get() - shadow_before == 6
    assert shadow_counted in metrics  # (the scrape may precede the last shadow job)
    assert 'mlops_serving_alias_info{alias="challenger",model_version="8"} 1.0' in metrics
    assert health["challenger"]["active"] and health["shadow"]["failed"] == 0
    # Served-only readers (drift, live performance) see one row per flight.
    assert (frame["role"] == "served").sum() == 6


def test_a_failing_challenger_never_fails_a_request(tmp_path):
    app, service, logger = _service(tmp_path, fails=True)
    with TestClient(app) as client:
        answers = [client.post("/predict", json=f) for f in _flights(5)]
        assert service.shadow.wait_idle(30)
        metrics = client.get("/metrics").text
        health = client.get("/health").json()
    assert [a.status_code for a in answers] == [200] * 5
    assert service.shadow.failed == 5 and "booster exploded" in health["shadow"]["last_error"]
    assert 'mlops_serving_shadow_jobs_total{outcome="failed"} 5.0' in metrics
    assert (
        'mlops_serving_model_errors_total{alias="challenger",model_version="8",role="shadow"} 5.0' in metrics
    )
    frame = _logged(service, logger)
    assert set(frame["role"]) == {"served"} and len(frame) == 5


def test_a_slow_challenger_delays_nothing_and_is_dropped_when_behind(tmp_path):
    app, service, logger = _service(tmp_path, delay=0.5, shadow_max_pending=2)
    with TestClient(app) as client:
        client.post("/predict", json=FLIGHT)  # the first request pays the lazy set-up
        assert service.shadow.wait_idle(30)
        took = []
        for f in _flights(8):
            t = time.perf_counter()
            assert client.post("/predict", json=f).status_code == 200
            took.append(time.perf_counter() - t)
        metrics = client.get("/metrics").text
    # 8 answers while the challenger needs 0.5 s per job (4 s if they waited): none waited for it.
    assert sum(took) < 2.0, took
    assert service.shadow.dropped >= 4, service.shadow.describe()
    assert f'mlops_serving_shadow_jobs_total{{outcome="dropped"}} {float(service.shadow.dropped)}' in metrics


def test_no_shadow_when_the_challenger_is_the_champion_or_shadow_is_off(tmp_path):
    app, service, logger = _service(tmp_path / "same", challenger="7")
    with TestClient(app) as client:
        client.post("/predict", json=FLIGHT)
        health = client.get("/health").json()
    assert not health["challenger"]["active"] and "is the champion" in health["challenger"]["reason"]
    assert service.shadow.scored == 0 and set(_logged(service, logger)["role"]) == {"served"}
    app, service, logger = _service(tmp_path / "off", shadow=False)
    with TestClient(app) as client:
        client.post("/predict", json=FLIGHT)
        assert client.get("/health").json()["shadow"] is None
    assert len(_logged(service, logger)) == 1


# --------------------------------------------------------------------------------------------------
# Canary
# --------------------------------------------------------------------------------------------------


def test_canary_answers_its_share_sticky_and_logged(tmp_path):
    app, service, logger = _service(tmp_path, canary_percent=30)
    flights = _flights(60)
    with TestClient(app) as client:
        first = [client.post("/predict", json=f).json() for f in flights]
        again = client.post("/predict", json={"flights": flights}).json()
        metrics = client.get("/metrics").text
    by = [a["predictions"][0]["served_by"] for a in first]
    canary = [b["alias"] == CHALLENGER for b in by]
    assert 5 <= sum(canary) <= 35, sum(canary)
    # Sticky: the batch gives every flight the model it had alone; the answer names both versions.
    assert [p["served_by"] for p in again["predictions"]] == by
    assert again["model_version"] == "7,8"
    assert all(a["model_version"] == ("8" if c else "7") for a, c in zip(first, canary, strict=True))
    frame = _logged(service, logger)
    served = frame[frame["role"] == "served"]
    shadow = frame[frame["role"] == "shadow"]
    assert len(served) == 120 and len(shadow) == 120
    assert (served["alias"] == CHALLENGER).sum() == 2 * sum(canary)
    # Each flight's other model is its shadow: the champion shadows the canary.
    paired = served.merge(shadow, on="prediction_id", suffixes=("", "_shadow"))
    assert len(paired) == 120 and (paired["alias"] != paired["alias_shadow"]).all()
    n = sum(canary)
    assert (
        f'mlops_serving_model_predictions_total{{alias="challenger",model_version="8",role="served"}} {2.0 * n}'
        in metrics
    )
    answered = [line for line in metrics.splitlines() if line.startswith("mlops_serving_predictions_total{")]
    assert any('model_version="8"' in line for line in answered), answered


def test_a_failing_canary_falls_back_to_the_champion(tmp_path):
    app, service, logger = _service(tmp_path, fails=True, canary_percent=100, shadow=False)
    with TestClient(app) as client:
        answers = [client.post("/predict", json=f) for f in _flights(4)]
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.json()["predictions"][0]["served_by"]["alias"] for a in answers} == {"champion"}
    assert (
        'mlops_serving_model_errors_total{alias="challenger",model_version="8",role="served"} 4.0' in metrics
    )


# --------------------------------------------------------------------------------------------------
# Over real HTTP: uvicorn on loopback
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two fake services started together: a 20 % canary with logging, and a failing challenger."""
    home = tmp_path_factory.mktemp("rollout-http")
    canary = FakeServer(home, "--challenger", "8", "--canary-percent", "20", "--log-predictions")
    failing = FakeServer(home, "--challenger", "9", "--challenger-fails")
    try:
        canary.wait_ready()
        failing.wait_ready()
        yield {"canary": canary, "failing": failing, "home": home}
    finally:
        canary.stop()
        failing.stop()


def test_shadow_and_canary_over_http(servers):
    srv, home = servers["canary"], servers["home"]
    flights = _flights(50)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        first = [c.post("/predict", json=f).json()["predictions"][0]["served_by"] for f in flights]
        second = [c.post("/predict", json=f).json()["predictions"][0]["served_by"] for f in flights]
        assert first == second  # sticky across requests (and connections)
        deadline = time.monotonic() + 30
        while c.get("/health").json()["shadow"]["scored"] < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        metrics = c.get("/metrics").text
    n = sum(b["alias"] == CHALLENGER for b in first)
    assert 2 <= n <= 20, n
    assert {(b["alias"], b["version"]) for b in first} == {("champion", "7"), (CHALLENGER, "8")}
    assert f'role="served"}} {2.0 * n}' in metrics and f'role="shadow"}} {2.0 * n}' in metrics
    deadline = time.monotonic() + 30
    frame = pd.DataFrame()
    while len(frame) < 200 and time.monotonic() < deadline:
        time.sleep(0.3)
        files = list(lake.list_uris(lake.join(home.as_uri(), "lake", "predictions_online")))
        frame = pd.concat([lake.read_parquet(f) for f in files], ignore_index=True) if files else frame
    assert len(frame) == 200, len(frame)
    roles = frame.groupby("prediction_id")["role"].apply(lambda r: tuple(sorted(r)))
    assert len(roles) == 100 and set(roles) == {("served", "shadow")}


def test_a_failing_challenger_over_http(servers):
    with httpx.Client(base_url=servers["failing"].url, timeout=30) as c:
        statuses = [c.post("/predict", json=f).status_code for f in _flights(20)]
        deadline = time.monotonic() + 30
        while c.get("/health").json()["shadow"]["failed"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        metrics = c.get("/metrics").text
    assert statuses == [200] * 20
    assert (
        'mlops_serving_model_errors_total{alias="challenger",model_version="9",role="shadow"} 20.0' in metrics
    )
