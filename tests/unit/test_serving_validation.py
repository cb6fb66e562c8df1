"""The prediction service's HTTP contract, without MLflow or Feast (a fake model and online store).

* bad input is a clear 4xx naming the flight, the field and why; random garbage never gets a 5xx;
* /health, /metrics and /docs; 503 while nothing is loaded;
* the model holder swaps atomically: concurrent readers never see a half-loaded model, and a
  failed load keeps the current version;
* the prediction logger writes the batch columns by ds, off the request path.
"""

from __future__ import annotations

import json
import random
import threading
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops import lake
from mlops.config import get_settings
from mlops.features import compute
from mlops.serving import scoring
from mlops.serving.app import ServeConfig, create_app
from mlops.serving.logger import LoggedPrediction, PredictionLogger
from mlops.serving.model import ModelHolder, ServedModel
from mlops.serving.online import FlightRequest
from mlops.serving.schemas import EXAMPLE_FLIGHT

FLIGHT = dict(EXAMPLE_FLIGHT)


class FakeBooster:
    """P = a logistic of the departure hour: deterministic, and it sees the matrix it is given.

    ``fails``: raises on any real row (the all-missing warm-up row of a load still passes).
    """

    def __init__(self, offset: float = 0.0, delay: float = 0.0, fails: bool = False) -> None:
        self.offset, self.delay, self.fails = offset, delay, fails

    def inplace_predict(self, x: np.ndarray) -> np.ndarray:
        if self.fails and not np.isnan(x).all():
            raise RuntimeError("booster exploded (a deliberately broken model)")
        if self.delay:
            time.sleep(self.delay)
        hour = np.nan_to_num(x[:, 0])
        return 1.0 / (1.0 + np.exp(-(hour - 12.0) / 3.0 - self.offset))


def fake_model(
    version: str = "7", offset: float = 0.0, delay: float = 0.0, fails: bool = False
) -> ServedModel:
    cats = {k: [str(c) for c in v.categories] for k, v in compute.categorical_dtypes().items()}
    return ServedModel(
        name="flight_delay_xgb",
        version=version,
        features=list(compute.MODEL_FEATURES),
        categories=cats,
        booster=FakeBooster(offset, delay, fails),
    )


class FakeView:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeReader:
    service = "flight_delay_v1"
    online_store_type = "fake"
    views = (FakeView("origin_weather"),)

    def read(self, flights):
        return [{"wx_temp": 50.0} for _ in flights], [
            ["origin_weather"] if f.tailnum is None else [] for f in flights
        ]


def make_client(tmp_path, *, version: str | None = "7", max_batch: int = 5, reader=FakeReader, **cfg):
    holder = ModelHolder(resolve=lambda: version, load=lambda v: fake_model(v), poll_seconds=3600)
    config = ServeConfig(
        max_batch=max_batch,
        poll_seconds=3600,
        log_predictions=False,
        settings=get_settings({"MLOPS_HOME": str(tmp_path)}),
        **cfg,
    )
    return TestClient(create_app(config, holder=holder, reader_factory=reader))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with make_client(tmp_path_factory.mktemp("serve")) as c:
        yield c


def _errors(resp) -> list[dict]:
    detail = resp.json()["detail"]
    return detail if isinstance(detail, list) else [{"msg": detail}]


# --------------------------------------------------------------------------------------------------
# The happy path, in its three shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["object", "list", "flights"])
def test_predict_shapes(client, shape):
    body = {"object": FLIGHT, "list": [FLIGHT, FLIGHT], "flights": {"flights": [FLIGHT]}}[shape]
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["model_version"] == "7" and data["model_name"] == "flight_delay_xgb"
    assert resp.headers["x-model-version"] == "7"
    assert len(data["predictions"]) == (2 if shape == "list" else 1)
    p = data["predictions"][0]
    assert p["flight_id"] == "2013-06-12_UA_1545_EWR"
    assert p["sched_dep_ts"] == "2013-06-12T09:15:00Z"
    assert 0.0 < p["delay_probability"] < 1.0
    assert p["delayed"] == (p["delay_probability"] >= data["threshold"])
    assert p["missing_feature_views"] == []


def test_decision_follows_the_threshold(tmp_path):
    late = {**FLIGHT, "sched_dep_ts": "2013-06-12T21:00"}  # the fake model: later is riskier
    for threshold, expected in ((0.01, True), (0.99, False)):
        with make_client(tmp_path, threshold=threshold) as c:
            p = c.post("/predict", json=late).json()
            assert p["threshold"] == threshold and p["predictions"][0]["delayed"] is expected


def test_lowercase_codes_and_missing_tailnum_are_fine(client):
    resp = client.post("/predict", json={**FLIGHT, "carrier": "ua", "origin": " ewr", "tailnum": None})
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"][0]["missing_feature_views"] == ["origin_weather"]


# --------------------------------------------------------------------------------------------------
# Bad input: clear 4xx
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"origin": "XYZ"}, "origin", "not a known airport"),
        ({"origin": "BOS"}, "origin", "serves departures from EWR, JFK, LGA"),
        ({"dest": "QQQ"}, "dest", "not a known airport"),
        ({"dest": "EWR", "origin": "EWR"}, "dest", "equals origin"),
        ({"carrier": "ZZ"}, "carrier", "unknown carrier"),
        ({"sched_dep_ts": "2013-13-01T08:00"}, "sched_dep_ts", "not a valid ISO 8601"),
        ({"sched_dep_ts": "yesterday"}, "sched_dep_ts", "ISO 8601"),
        ({"sched_dep_ts": "2013-05-01"}, "sched_dep_ts", "time of day"),
        ({"sched_dep_ts": "1900-05-01T08:00"}, "sched_dep_ts", "outside"),
        ({"sched_dep_ts": 1367400000}, "sched_dep_ts", "string"),
        ({"flight": "abc"}, "flight", "integer"),
        ({"flight": 0}, "flight", "greater than or equal to 1"),
        ({"tailnum": "N1 2"}, "tailnum", "letters and digits"),
        ({"gate": "B12"}, "gate", "Extra inputs are not permitted"),
    ],
)
def test_invalid_flights_are_422_naming_field(client, change, field, words):
    resp = client.post("/predict", json={"flights": [FLIGHT, {**FLIGHT, **change}]})
    assert resp.status_code == 422, resp.text
    errors = _errors(resp)
    assert any(e["loc"][:3] == ["body", "flights", 1] and e["loc"][-1] == field for e in errors), errors
    assert any(words in e["msg"] for e in errors), errors


def test_missing_field_is_422(client):
    body = {k: v for k, v in FLIGHT.items() if k != "dest"}
    resp = client.post("/predict", json=body)
    assert resp.status_code == 422
    assert _errors(resp)[0]["loc"] == ["body", "flights", 0, "dest"]


def test_every_vocabulary_error_is_reported(client):
    resp = client.post(
        "/predict", json=[{**FLIGHT, "origin": "XYZ", "carrier": "ZZ"}, {**FLIGHT, "dest": "QQQ"}]
    )
    assert resp.status_code == 422
    assert {tuple(e["loc"][2:]) for e in _errors(resp)} == {(0, "carrier"), (0, "origin"), (1, "dest")}


def test_batch_too_large_is_413(client):
    resp = client.post("/predict", json={"flights": [FLIGHT] * 6})
    assert resp.status_code == 413
    assert "at most 5" in resp.json()["detail"]


def test_body_too_large_is_413(tmp_path):
    with make_client(tmp_path, max_body_bytes=500, max_batch=100) as c:
        resp = c.post("/predict", json={"flights": [FLIGHT] * 10})
        assert resp.status_code == 413 and "exceeds 500 bytes" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{bad json", 400),
        (b"", 400),
        (b"\xff\xfe", 400),
        (b"42", 422),
        (b'"a string"', 422),
        (b"[]", 422),
        (b'{"flights": []}', 422),
        (b'{"flights": "UA1545"}', 422),
        (b'{"flights": [null]}', 422),
        (b"null", 422),
    ],
)
def test_malformed_bodies(client, body, status):
    resp = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]


def _garbage(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "none", "bool"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, -1, 1, 2**63, -(2**70), rng.randint(-(10**6), 10**6)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, 3.14])
    if kind == "str":
        return rng.choice(["", "EWR", "2013-05-01T08:00", "\u00e9\u00e8", "x" * 300, "N14228", "T", "0" * 16])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice([*FLIGHT, "flights", "x"]): _garbage(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def test_garbage_never_crashes(client):
    """Random bodies (mutated flights and random JSON): always 2xx or 4xx, never 5xx."""
    rng = random.Random(7)
    statuses = set()
    for i in range(300):
        if i % 2:
            body = dict(FLIGHT)
            for key in rng.sample(list(FLIGHT), rng.randint(1, 3)):
                body[key] = _garbage(rng)
        else:
            body = _garbage(rng)
        resp = client.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"})
        statuses.add(resp.status_code)
        assert resp.status_code < 500, (body, resp.text)
    assert statuses >= {200, 422}


# --------------------------------------------------------------------------------------------------
# Health, metrics, docs
# --------------------------------------------------------------------------------------------------


def test_health_metrics_docs(client):
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["model"]["version"] == "7" and body["features"]["loaded"]
    client.post("/predict", json=FLIGHT)
    client.post("/predict", json={"flights": []})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'mlops_serving_request_duration_seconds_bucket{le="0.005",path="/predict"}' in text
    assert 'mlops_serving_requests_total{method="POST",path="/predict",status="200"}' in text
    assert 'mlops_serving_request_errors_total{path="/predict",status="422"}' in text
    assert 'mlops_serving_predictions_total{decision="on_time",model_version="7"}' in text
    assert 'mlops_serving_model_info{model_version="7"} 1.0' in text
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"PredictRequest", "Flight", "PredictResponse"} <= set(spec["components"]["schemas"])
    body_schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/PredictRequest"} in body_schema["oneOf"]


def test_not_ready_is_503(tmp_path):
    def broken():
        raise FileNotFoundError("registry.db")

    with make_client(tmp_path, version=None, reader=broken) as c:
        health = c.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert not body["model"]["loaded"] and "is not set" in body["model"]["last_error"]
        assert not body["features"]["loaded"] and "registry.db" in body["features"]["error"]
        resp = c.post("/predict", json=FLIGHT)
        assert resp.status_code == 503 and "not ready" in resp.json()["detail"]
        # Bad input is still a 4xx: validation comes first.
        assert c.post("/predict", json={**FLIGHT, "origin": "XYZ"}).status_code == 422


def test_internal_error_is_500_and_the_service_lives_on(tmp_path):
    class Flaky(FakeReader):
        calls = 0

        def read(self, flights):
            Flaky.calls += 1
            if Flaky.calls == 3:  # 1: warm-up, 2: first request, 3: this one
                raise RuntimeError("disk on fire")
            return super().read(flights)

    with make_client(tmp_path, reader=Flaky) as c:
        assert c.post("/predict", json=FLIGHT).status_code == 200
        resp = c.post("/predict", json=FLIGHT)
        assert resp.status_code == 500 and resp.json()["request_id"]
        assert c.post("/predict", json=FLIGHT).status_code == 200


# --------------------------------------------------------------------------------------------------
# The holder: atomic swap, failed loads
# --------------------------------------------------------------------------------------------------


def test_swap_is_atomic_under_concurrent_readers():
    pointer = {"version": "1"}
    loads: list[str] = []

    def load(version: str) -> ServedModel:
        loads.append(version)
        time.sleep(0.05)  # a slow load: readers keep the old model meanwhile
        return fake_model(version, offset=float(version))

    holder = ModelHolder(resolve=lambda: pointer["version"], load=load, poll_seconds=0.01)
    assert holder.refresh() and holder.current.version == "1"
    seen: list[tuple[str, float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        row = {"sched_dep_hour": 12.0}
        while not stop.is_set():
            try:
                model = holder.current
                p = float(model.predict_rows([row])[0])
                seen.append((model.version, p))
            except BaseException as exc:  # noqa: BLE001 (the test reports any)
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    holder.start()
    try:
        for v in ("2", "3"):
            time.sleep(0.15)
            pointer["version"] = v
            deadline = time.monotonic() + 5
            while holder.current.version != v and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(0.05)
    finally:
        stop.set()
        holder.stop()
        for t in threads:
            t.join()
    assert not errors
    assert loads == ["1", "2", "3"] and holder.swaps == 3
    # Every prediction came from a whole model: its probability is the one of its own version.
    expected = {
        v: float(fake_model(v, offset=float(v)).predict_rows([{"sched_dep_hour": 12.0}])[0]) for v in "123"
    }
    assert {v for v, _ in seen} == {"1", "2", "3"}
    assert all(p == expected[v] for v, p in seen)


def test_failed_load_keeps_serving_the_current_version():
    pointer = {"version": "1"}

    def load(version: str) -> ServedModel:
        if version == "2":
            raise OSError("artifact store unreachable")
        return fake_model(version)

    failures = []
    holder = ModelHolder(
        resolve=lambda: pointer["version"], load=load, on_error=lambda m, e: failures.append(m)
    )
    holder.refresh()
    pointer["version"] = "2"
    assert not holder.refresh()
    assert holder.current.version == "1"
    assert "v2 failed" in holder.last_error and "still serving v1" in holder.last_error
    assert len(failures) == 1
    pointer["version"] = "3"
    assert holder.refresh() and holder.current.version == "3" and holder.last_error is None


# --------------------------------------------------------------------------------------------------
# The prediction log
# --------------------------------------------------------------------------------------------------


def _entry(i: int, day: int, version: str = "7") -> LoggedPrediction:
    from datetime import UTC, datetime

    flight = FlightRequest("UA", 100 + i, "EWR", "IAH", datetime(2013, 6, day, 14, i, tzinfo=UTC), "N14228")
    row = {"sched_dep_hour": 10.0, "carrier": "UA", "origin": "EWR", "dest": "IAH", "plane_engine": None}
    return LoggedPrediction(
        f"r{i}", 1.37e9 + i, flight, row, 0.1 * (i % 10), 0.5, "flight_delay_xgb", version
    )


def test_logger_writes_batch_columns_by_day(tmp_path):
    uri = tmp_path.as_uri()
    written = []
    logger = PredictionLogger(uri, flush_seconds=0.05, on_written=lambda n, u: written.append((n, u)))
    logger.start()
    logger.log([_entry(i, 12) for i in range(5)] + [_entry(i, 13) for i in range(5, 8)])
    deadline = time.monotonic() + 10
    while logger.written_rows < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    logger.close()
    files = list(lake.list_uris(lake.join(uri, "predictions_online")))
    assert len(files) == 2 and all("/part-" in f and f.endswith(".parquet") for f in files)
    assert {f.split("/")[-2] for f in files} == {"ds=2013-06-12", "ds=2013-06-13"}
    frame = pd.concat([lake.read_parquet(f) for f in files], ignore_index=True)
    assert list(frame.columns) == scoring.ONLINE_COLUMNS
    assert list(frame.columns[: len(scoring.BATCH_COLUMNS)]) == scoring.BATCH_COLUMNS
    assert len(frame) == 8 and set(frame["source"]) == {"online"} and set(frame["model_version"]) == {"7"}
    assert frame["predicted_delayed"].tolist() == [p >= 0.5 for p in frame["delay_probability"]]
    assert str(frame["served_at"].dtype) == "datetime64[us, UTC]"
    assert frame["flight_id"].iloc[0] == "2013-06-12_UA_100_EWR"
    assert sum(n for n, _ in written) == 8


def test_logger_drops_instead_of_blocking_when_full(tmp_path):
    dropped = []
    logger = PredictionLogger(tmp_path.as_uri(), max_buffer=5, on_dropped=dropped.append)
    logger.log([_entry(i, 12) for i in range(4)])
    logger.log([_entry(i, 12) for i in range(4, 8)])  # would exceed the buffer: dropped
    assert logger.pending == 4 and logger.dropped_rows == 4 and dropped == [4]
    assert logger.flush() == 4 and logger.pending == 0


def test_logger_retries_a_failed_write_once(tmp_path, monkeypatch):
    logger = PredictionLogger(tmp_path.as_uri())
    calls = {"n": 0}
    real = lake.write_bytes

    def flaky(uri, data):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("lake unreachable")
        real(uri, data)

    monkeypatch.setattr(lake, "write_bytes", flaky)
    logger.log([_entry(0, 12)])
    assert logger.flush() == 0 and "lake unreachable" in logger.last_error and logger.pending == 1
    assert logger.flush() == 1 and logger.last_error is None


def test_logger_arrow_path_equals_the_pandas_path():
    """The flush writes :func:`to_table` (no pandas); it reads back as :func:`to_frame` gives."""
    import io

    from mlops.serving.logger import parquet_bytes, to_frame, to_table

    batch = [_entry(i, 12 + i % 2) for i in range(12)]
    batch[3] = LoggedPrediction(
        "odd",
        1.37e9,
        batch[3].flight,
        {"sched_dep_hour": None, "plane_engine": float("nan")},
        0.5,
        0.5,
        "m",
        "8",
    )
    want = to_frame(batch)
    got = pd.read_parquet(io.BytesIO(parquet_bytes(to_table(batch))))
    pd.testing.assert_frame_equal(got, want)
