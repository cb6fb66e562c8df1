"""End to end through HTTP: ``mlops serve --spec air_time`` on a real (small) home.

The home: 16 curated days of June 2013 (and their curated weather), 14 days of feature tables,
``feast apply``; the air-time model trained from its spec alone (``TrainingRun`` with
``spec="air_time"``: Feast ``get_historical_features`` through ``air_time_v1``, XGBoost
regressor), logged to MLflow, registered as ``flight_air_time_xgb`` and promoted by its gate (MAE);
the online store materialized.

* the served air-time inputs are the training inputs: at an instant ``t0`` the service's online
  path (direct read of ``air_time_v1``'s views + the flight's request-time and derived features)
  gives flights departing at ``t0`` the model inputs their training rows had, hence the same
  minutes as the registered model on the training frame;
* ``POST /predict`` over the real CLI and uvicorn answers ``air_time_minutes`` (no threshold, no
  decision) equal to the in-process model and online read; a request missing an air-time field is
  a 422 naming it; ``/openapi.json`` lists the spec's request fields and response;
* the served predictions land in ``{lake}/models/air_time/predictions_online/ds=...`` with the
  prediction column ``air_time_minutes`` (never in the flight-delay model's log);
* ``/health`` and ``/metrics`` name the air-time model.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops import lake, layout
from mlops.air_time.model import SPEC
from mlops.features import feature_store
from mlops.flight_delay.serving import entity_keys, feature_row
from mlops.serving.model import load_version
from mlops.serving.online import OnlineFeatureReader
from tests._seeded import seeded_home
from tests.e2e._serving_home import (
    Server,
    flight_requests,
    materialize_at,
    pick_instant,
    prepare_lake,
    request_body,
    shift,
    train_champion,
)

pytestmark = pytest.mark.slow

DAY = "2013-06-12"  # the day served
AS_OF = "2013-06-13"  # trained on [AS_OF - 14, AS_OF): DAY's flights are in the training frame
WINDOW, HOLDOUT = 14, 3


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The home of tests/e2e/_serving_home.py with the air-time model as the champion."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("serving_air_time") / "mlops"
        settings = seeded_home(mp, root)
        started = time.perf_counter()
        prepared = prepare_lake(shift(AS_OF, -WINDOW), DAY, settings)
        trained = train_champion(
            AS_OF, settings, spec="air_time", window_days=WINDOW, holdout_days=HOLDOUT, n_estimators=60
        )
        curated = prepared["curated"]
        day = curated[(curated["ds"] == DAY) & curated["air_time"].notna()].reset_index(drop=True)
        # The online store as of t0: what a request at t0 reads. Then the whole day.
        t0, at_t0 = pick_instant(day, "air_time")
        reader = OnlineFeatureReader(
            feature_store.get_store(settings), SPEC.feature_service, keys=entity_keys
        )
        values, missing = materialize_at(DAY, t0, settings, lambda: reader.read(flight_requests(at_t0)))
        print(f"\nair-time serving home built in {time.perf_counter() - started:.1f} s")
        yield {
            "settings": settings,
            "root": root,
            "frame": trained.frame,
            "day": day,
            "version": trained.version,
            "at_t0": at_t0,
            "t0_values": values,
            "t0_missing": missing,
            "views": [v.name for v in reader.views],
        }


@pytest.fixture(scope="module")
def server(home):
    srv = Server(home["root"], "--spec", "air_time", "--poll-seconds", "1", "--log-flush-seconds", "1")
    try:
        health = srv.wait_ready()
        assert health["spec"] == "air_time"
        assert health["model"]["version"] == home["version"]
        assert health["model"]["alias"] == "flight_air_time_xgb@champion"
        assert health["features"]["feature_service"] == "air_time_v1"
        yield srv
    finally:
        code = srv.stop()
        assert code in (0, -15) and "Application shutdown complete" in srv.tail(), srv.tail()


def test_served_air_time_inputs_equal_training_inputs(home):
    from mlops.models import registry

    at_t0, values = home["at_t0"], home["t0_values"]
    assert len(at_t0) >= 5, f"only {len(at_t0)} flights at t0"
    # The air-time service reads its own feature service's views (no flight-delay-only view).
    assert home["views"] == ["origin_weather", "origin_congestion", "route_delay_stats", "aircraft"]
    served = load_version(home["version"], home["settings"], SPEC.model_name)
    assert served.features == list(SPEC.features)
    rows = [feature_row(r, v) for r, v in zip(flight_requests(at_t0), values, strict=True)]
    online = served.matrix(rows)
    training = home["frame"].set_index("flight_id").loc[at_t0["flight_id"]].reset_index()
    # Not vacuous: the online store had rows for these flights at t0.
    assert np.isfinite(online).mean() > 0.8, home["t0_missing"]
    # The same minutes as the registered model on the training rows (get_historical_features).
    minutes_served = served.predict_rows(rows)
    minutes_training = registry.predictor(home["version"], home["settings"], SPEC.model_name)(training)
    np.testing.assert_allclose(minutes_served, minutes_training, rtol=0, atol=1e-9)
    assert (minutes_served > 20).all() and (minutes_served < 700).all(), minutes_served


def test_predict_air_time_over_http(home, server):
    day = home["day"].sample(40, random_state=7).reset_index(drop=True)
    bodies = [request_body(r) for _, r in day.iterrows()]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        resp = c.post("/predict", json={"flights": bodies})
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["model_name"] == "flight_air_time_xgb" and data["model_version"] == home["version"]
        assert "threshold" not in data
        assert all(
            set(p) == {"flight_id", "sched_dep_ts", "air_time_minutes", "missing_feature_views", "served_by"}
            for p in data["predictions"]
        )
        # In process: the same online read of air_time_v1 and the same model, no HTTP.
        served = load_version(home["version"], home["settings"], SPEC.model_name)
        reader = OnlineFeatureReader(
            feature_store.get_store(home["settings"]), SPEC.feature_service, keys=entity_keys
        )
        reqs = flight_requests(day)
        values, missing = reader.read(reqs)
        expected = served.predict_rows([feature_row(r, v) for r, v in zip(reqs, values, strict=True)])
        got = np.array([p["air_time_minutes"] for p in data["predictions"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        assert [p["flight_id"] for p in data["predictions"]] == day["flight_id"].tolist()
        assert [p["missing_feature_views"] for p in data["predictions"]] == missing
        # A useful model: minutes close to what the flights actually spent in the air.
        mae = float(np.mean(np.abs(got - day["air_time"].to_numpy())))
        assert mae < 25, mae
        # A request missing an air-time field: a 422 naming it.
        for field in ("dest", "sched_dep_ts"):
            bad = c.post("/predict", json={k: v for k, v in bodies[0].items() if k != field})
            assert bad.status_code == 422, bad.text
            assert bad.json()["detail"][0]["loc"] == ["body", "flights", 0, field]
            assert bad.json()["detail"][0]["type"] == "missing"
        # The OpenAPI schema is the spec's.
        doc = c.get("/openapi.json").json()
        schemas = doc["components"]["schemas"]
        assert set(schemas["Flight"]["properties"]) == set(SPEC.request_fields)
        assert "air_time_minutes" in schemas["Prediction"]["properties"]
        assert "delay_probability" not in schemas["Prediction"]["properties"]
        assert c.get("/docs").status_code == 200
        scrape = c.get("/metrics").text
        assert f'mlops_serving_model_info{{model_version="{home["version"]}"}} 1.0' in scrape
        assert (
            f'mlops_serving_predictions_total{{decision="scored",model_version="{home["version"]}"}}'
            in scrape
        )


def test_served_air_time_is_logged_under_its_model(home, server):
    lake_uri = home["settings"].lake_uri
    folder = layout.predictions_online_dir(lake_uri, DAY, SPEC.lake_folder)
    assert "/models/air_time/predictions_online/" in folder
    deadline = time.monotonic() + 60
    files: list[str] = []
    while time.monotonic() < deadline and not files:
        files = list(lake.list_uris(folder)) if lake.exists(folder) else []
        time.sleep(0.5)
    assert files, f"nothing logged under {folder}:\n{server.tail()}"
    logged = pd.concat([lake.read_parquet(f) for f in files], ignore_index=True)
    assert "air_time_minutes" in logged.columns and "delay_probability" not in logged.columns
    assert set(logged["model_name"]) == {"flight_air_time_xgb"}
    assert (logged["source"] == "online").all() and logged["air_time_minutes"].between(20, 700).all()
    # Never in the flight-delay model's online log.
    assert not lake.exists(layout.predictions_online_root(lake_uri))
