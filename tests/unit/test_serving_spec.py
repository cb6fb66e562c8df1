"""The prediction service serves any model spec: the air-time regressor beside the delay classifier.

On a fake model and online store (the real MLflow model, Feast store and uvicorn are in
``tests/e2e/test_serving_air_time.py``):

* ``ServeConfig(spec="air_time")``: the answer carries the spec's prediction column
  (``air_time_minutes``), no threshold and no decision; the registered model is the spec's;
  ``/health`` names the spec and its feature service; the metrics count the flights as ``scored``;
* the request schema is the spec's ``request_fields``: a request missing any required field is a
  422 naming it; the OpenAPI schema (``/docs``) lists exactly those fields and the spec's response;
* a spec whose online adapter disagrees with its ``request_fields`` (or has none) is refused with
  an error naming the field; ``mlops serve --spec`` / ``MLOPS_SERVE_SPEC`` refuse bad values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlops.air_time.model import SPEC as AIR_TIME
from mlops.config import get_settings
from mlops.features import compute
from mlops.flight_delay.model import SPEC as DELAY
from mlops.flight_delay.serving import EXAMPLE_FLIGHT, FlightRequest, parse_departure, request_values
from mlops.serving.app import ServeConfig, build_service, create_app
from mlops.serving.model import ModelHolder, ServedModel
from mlops.serving.online import online_spec
from tests.conftest import use_home
from tests.unit.test_features import curated_days

FLIGHT = dict(EXAMPLE_FLIGHT)
#: Fields a request must have (``tailnum`` is optional: unknown aircraft).
REQUIRED = [f for f in AIR_TIME.request_fields if f != "tailnum"]


class MinutesBooster:
    """Minutes in the air = 20 + distance / 8 (distance is a column of the matrix it is given)."""

    def __init__(self, features: list[str]) -> None:
        self.distance = features.index("distance")

    def inplace_predict(self, x: np.ndarray) -> np.ndarray:
        return 20.0 + np.nan_to_num(x[:, self.distance]) / 8.0


def air_time_model(version: str = "3") -> ServedModel:
    cats = {k: [str(c) for c in v.categories] for k, v in compute.categorical_dtypes().items()}
    features = list(AIR_TIME.features)
    return ServedModel(
        name=AIR_TIME.model_name,
        version=version,
        features=features,
        categories={k: v for k, v in cats.items() if k in features},
        booster=MinutesBooster(features),
    )


class _View:
    def __init__(self, name: str) -> None:
        self.name = name


class AirTimeReader:
    service = "air_time_v1"
    online_store_type = "fake"
    views = (_View("origin_weather"), _View("route_stats"))

    def read(self, rows):
        return [{"wx_temp": 50.0} for _ in rows], [[] if r.tailnum else ["aircraft"] for r in rows]


def _client(tmp_path, spec="air_time", logger=None, **cfg) -> TestClient:
    model = air_time_model if spec == "air_time" else None
    holder = ModelHolder(
        name=AIR_TIME.model_name, resolve=lambda: "3", load=lambda v: model(v), poll_seconds=3600
    )
    config = ServeConfig(
        spec=spec,
        poll_seconds=3600,
        log_predictions=False,
        shadow=False,
        settings=get_settings({"MLOPS_HOME": str(tmp_path)}),
        **cfg,
    )
    return TestClient(create_app(config, holder=holder, reader_factory=AirTimeReader, logger=logger))


@pytest.fixture(scope="module", autouse=True)
def route_home(tmp_path_factory):
    """A home whose lake holds the route table of a few June days (a request carries no distance:
    the service reads it from there, as the feature build does)."""
    with pytest.MonkeyPatch.context() as mp:
        home = use_home(mp, tmp_path_factory.mktemp("air_time_serve") / "mlops")
        compute.update_routes(curated_days(["2013-06-11", "2013-06-12"]), get_settings())
        compute._route_distance.cache_clear()
        yield home
    compute._route_distance.cache_clear()


@pytest.fixture(scope="module")
def client(route_home):
    with _client(route_home) as c:
        yield c


def test_air_time_answers_minutes_without_a_decision(client):
    other = {**FLIGHT, "dest": "LAX", "tailnum": None}
    resp = client.post("/predict", json={"flights": [FLIGHT, other]})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["model_name"] == "flight_air_time_xgb" and data["model_version"] == "3"
    assert "threshold" not in data
    first, second = data["predictions"]
    assert list(first) == [
        "flight_id",
        "sched_dep_ts",
        "air_time_minutes",
        "missing_feature_views",
        "served_by",
    ]
    # The model saw the flight's request-time distance (the route table), as the batch path does.
    for body, p in ((FLIGHT, first), (other, second)):
        row = FlightRequest(
            body["carrier"],
            body["flight"],
            body["origin"],
            body["dest"],
            parse_departure(body["sched_dep_ts"]),
            body["tailnum"],
        )
        distance = request_values(row)["distance"]
        assert np.isfinite(distance) and distance > 500
        assert p["air_time_minutes"] == pytest.approx(20.0 + distance / 8.0)
        assert p["flight_id"] == row.flight_id
    assert first["air_time_minutes"] != second["air_time_minutes"]  # EWR-IAH vs EWR-LAX
    assert second["missing_feature_views"] == ["aircraft"]
    assert first["served_by"] == {"alias": "champion", "version": "3"}


def test_health_and_metrics_name_the_spec(client):
    health = client.get("/health").json()
    assert health["spec"] == "air_time"
    assert health["features"]["feature_service"] == "air_time_v1"
    assert health["model"]["alias"] == "flight_air_time_xgb@champion"
    assert health["threshold"] is None
    client.post("/predict", json=FLIGHT)
    scrape = client.get("/metrics").text
    assert 'mlops_serving_predictions_total{decision="scored",model_version="3"}' in scrape
    assert 'decision="delayed"' not in scrape and 'decision="on_time"' not in scrape


@pytest.mark.parametrize("field", REQUIRED)
def test_a_request_missing_a_field_is_422_naming_it(client, field):
    body = {k: v for k, v in FLIGHT.items() if k != field}
    resp = client.post("/predict", json={"flights": [FLIGHT, body]})
    assert resp.status_code == 422, resp.text
    errors = resp.json()["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "flights", 1, field], "missing")], errors


def test_an_unknown_field_or_a_bad_value_is_422(client):
    resp = client.post("/predict", json={**FLIGHT, "delay_probability": 0.3})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "flights", 0, "delay_probability"]
    resp = client.post("/predict", json={**FLIGHT, "dest": "XYZ"})
    assert resp.status_code == 422 and "not a known airport" in resp.text


def test_openapi_is_the_specs(client, tmp_path):
    doc = client.get("/openapi.json").json()
    assert doc["info"]["title"] == "Air-time prediction service"
    assert "flight_air_time_xgb@champion" in doc["info"]["summary"]
    assert "air_time_v1" in doc["info"]["description"]
    schemas = doc["components"]["schemas"]
    assert set(schemas["Flight"]["properties"]) == set(AIR_TIME.request_fields)
    assert set(schemas["Flight"]["required"]) == set(REQUIRED)
    assert set(schemas["Prediction"]["properties"]) == {
        "flight_id",
        "sched_dep_ts",
        "air_time_minutes",
        "missing_feature_views",
        "served_by",
    }
    assert "threshold" not in schemas["PredictResponse"]["properties"]
    assert client.get("/docs").status_code == 200
    # The delay model's service keeps its schema: probability, decision and threshold.
    with _client(tmp_path, spec=None, threshold=0.4) as delay:
        doc = delay.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert doc["info"]["title"] == "Flight-delay prediction service"
    assert {"delay_probability", "delayed"} <= set(schemas["Prediction"]["properties"])
    assert "threshold" in schemas["PredictResponse"]["properties"]
    assert set(schemas["Flight"]["properties"]) == set(DELAY.request_fields)


def test_the_service_follows_the_specs_model(tmp_path):
    cfg = ServeConfig(
        spec="air_time",
        log_predictions=False,
        sidecar=False,
        settings=get_settings({"MLOPS_HOME": str(tmp_path)}),
    )
    service = build_service(cfg)
    assert service.holder.name == "flight_air_time_xgb"
    assert service.challenger is not None and service.challenger.name == "flight_air_time_xgb"
    assert service.spec is AIR_TIME


def test_online_spec_must_match_the_request_fields():
    assert online_spec(AIR_TIME).item_model.__name__ == "Flight"
    extra = dataclasses.replace(AIR_TIME, request_fields={**AIR_TIME.request_fields, "gate": "string"})
    with pytest.raises(ValueError, match="request field 'gate' is not a field of Flight"):
        online_spec(extra)
    typed = dataclasses.replace(AIR_TIME, request_fields={**AIR_TIME.request_fields, "flight": "string"})
    with pytest.raises(ValueError, match="request field 'flight' is 'string' in the spec"):
        online_spec(typed)
    fewer = dict(AIR_TIME.request_fields)
    del fewer["tailnum"]
    with pytest.raises(ValueError, match=r"fields the spec's request_fields lack: \['tailnum'\]"):
        online_spec(dataclasses.replace(AIR_TIME, request_fields=fewer))
    with pytest.raises(ValueError, match="has no online serving: set ModelSpec.online"):
        online_spec(dataclasses.replace(AIR_TIME, online=""))
    with pytest.raises(ValueError, match="not an OnlineSpec"):
        online_spec(dataclasses.replace(AIR_TIME, online="mlops.air_time.model:SPEC"))


def test_serve_refuses_a_bad_spec_or_a_threshold_without_decision(monkeypatch, caplog):
    from mlops.cli import main

    assert main(["serve", "--spec", "no_such_model"]) == 2
    assert "--spec='no_such_model': unknown model spec" in caplog.text
    assert main(["serve", "--spec", "air_time", "--threshold", "0.3"]) == 2
    assert "'air_time' answers air_time_minutes with no decision" in caplog.text
    monkeypatch.setenv("MLOPS_SERVE_SPEC", "mlops.nowhere:SPEC")
    assert main(["serve"]) == 2
    assert "MLOPS_SERVE_SPEC='mlops.nowhere:SPEC'" in caplog.text


def test_air_time_predictions_are_logged_under_its_model(route_home):
    import io

    import pandas as pd

    from mlops import lake, layout
    from mlops.serving import scoring
    from mlops.serving.logger import PredictionLogger, parquet_bytes, to_frame, to_table

    settings = get_settings({"MLOPS_HOME": str(route_home)})
    logger = PredictionLogger(settings.lake_uri, spec="air_time", flush_seconds=3600)
    assert logger.prefix == layout.predictions_online_root(settings.lake_uri, "air_time")
    with _client(route_home, logger=logger) as c:
        answer = c.post("/predict", json={"flights": [FLIGHT, {**FLIGHT, "dest": "LAX"}]}).json()
        batch = list(logger._buffer)
    assert len(batch) == 2 and logger.written_rows == 2  # the shutdown flushed them
    folder = layout.predictions_online_dir(settings.lake_uri, "2013-06-12", "air_time")
    assert "/models/air_time/predictions_online/ds=2013-06-12" in folder
    (uri,) = list(lake.list_uris(folder))
    logged = lake.read_parquet(uri)
    assert list(logged.columns) == scoring.online_columns(AIR_TIME)
    assert "delay_probability" not in logged and "threshold" not in logged
    minutes = [p["air_time_minutes"] for p in answer["predictions"]]
    assert logged["air_time_minutes"].tolist() == minutes
    assert set(logged["model_name"]) == {"flight_air_time_xgb"} and set(logged["role"]) == {"served"}
    assert logged["distance"].gt(500).all()
    # Nothing in the flight-delay model's log.
    assert not lake.exists(layout.predictions_online_root(settings.lake_uri))
    # The Arrow flush path (what was written) is the pandas path for this spec too.
    # (served_at: the float seconds -> microseconds rounding of the two paths differs by <= 1 us.)
    got = pd.read_parquet(io.BytesIO(parquet_bytes(to_table(batch, AIR_TIME))))
    want = to_frame(batch, AIR_TIME)
    assert (got["served_at"] - want["served_at"]).abs().max() <= pd.Timedelta(microseconds=1)
    pd.testing.assert_frame_equal(got.drop(columns="served_at"), want.drop(columns="served_at"))
    pd.testing.assert_frame_equal(logged, got)


def test_a_logger_of_the_specs_folder_is_what_the_app_builds(route_home):
    cfg = ServeConfig(
        spec="air_time",
        sidecar=False,
        shadow=False,
        settings=get_settings({"MLOPS_HOME": str(route_home)}),
    )
    service = build_service(cfg, holder=ModelHolder(resolve=lambda: None, poll_seconds=3600))
    assert service.logger is not None and service.logger.spec is AIR_TIME
    assert service.logger.prefix.endswith("/models/air_time/predictions_online")
