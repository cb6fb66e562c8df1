"""The scale-out profile of feature_repo/feature_store.yaml: SQL registry on PostgreSQL, Redis
online store, offline feature files on S3.

Runs against the PostgreSQL (127.0.0.1:5432, trust auth, user postgres) and Redis (127.0.0.1:6379)
of the development machine: a uniquely named database and a unique Feast project (Redis keys end
with the project name) per run, both removed afterwards. Skips when a service is absent, fails
under CI=true (tests/conftest.py ``require_service``). S3 is a moto server started here on a free
loopback port (the lake and Feast's offline sources at ``s3://<bucket>/lake``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from mlops import lake, layout
from mlops.config import FEATURE_SERVICE, get_settings
from mlops.features import compute, feature_store
from tests.conftest import require_service, service_available
from tests.unit.test_features import seed_curated

pytestmark = pytest.mark.integration

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "127.0.0.1:6379"
DAYS = ["2013-06-13", "2013-06-14"]


def _redis_keys(project: str) -> list[bytes]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    return list(client.scan_iter(match=b"*" + project.encode(), count=1000))


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, stopped afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not service_available("127.0.0.1", port):
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory, s3_endpoint):
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    import boto3
    import psycopg
    import redis

    token = uuid.uuid4().hex[:10]
    database, project = f"feast_test_{token}", f"flight_delay_t{token}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    bucket = f"mlops-lake-{token}"
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_LAKE_URI": f"s3://{bucket}/lake",
        "MLOPS_FEAST_PROJECT": project,
        "MLOPS_FEAST_REGISTRY": json.dumps(
            {
                "registry_type": "sql",
                "path": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
                "cache_ttl_seconds": 60,
                "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
            }
        ),
        "MLOPS_FEAST_ONLINE_STORE": json.dumps(
            {"type": "redis", "connection_string": REDIS, "key_ttl_seconds": 3600}
        ),
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            home = tmp_path_factory.mktemp("mlops")
            mp.setenv("MLOPS_HOME", str(home))
            for k, v in env.items():
                mp.setenv(k, v)
            lake.set_s3_client_factory(None)
            boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
            settings = get_settings()
            history = compute.day_range("2013-05-16", DAYS[-1])
            curated = seed_curated(history, settings)
            compute.build_feature_tables(DAYS, settings, include_dependents=False)
            yield {
                "settings": settings,
                "curated": curated,
                "project": project,
                "database": database,
                "env": env,
            }
            feature_store.get_store(settings).teardown()
    finally:
        lake.set_s3_client_factory(None)
        client = redis.Redis(host="127.0.0.1", port=6379)
        for key in _redis_keys(project):
            client.delete(key)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_scaleout_config_resolves_from_env(scaleout):
    config = feature_store.repo_config(scaleout["settings"])
    assert config.project == scaleout["project"]
    assert config.registry.registry_type == "sql"
    assert type(config.online_store).__name__ == "RedisOnlineStoreConfig"
    assert not (scaleout["settings"].home / "feast" / "registry.db").exists()
    assert feature_store.source_path("origin_weather", scaleout["settings"]).startswith("s3://")
    assert any(
        u.endswith(".parquet") for u in lake.list_uris(layout.features_root(scaleout["settings"].lake_uri))
    )


def test_apply_materialize_serve_on_postgres_and_redis(scaleout):
    settings = scaleout["settings"]
    applied = feature_store.apply(settings)
    assert set(applied["feature_views"]) == set(compute.VIEW_FEATURES)
    import psycopg

    with psycopg.connect(f"{PG}/{scaleout['database']}") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"feature_views", "entities", "feature_services"} <= tables
    # Materialize up to an instant and serve: Redis holds what the point-in-time join gives then.
    t0 = pd.Timestamp("2013-06-14 09:37:30").tz_localize("America/New_York").tz_convert("UTC")
    feature_store.materialize(DAYS[0], t0.to_pydatetime(), settings)
    assert _redis_keys(scaleout["project"]), "nothing written to Redis"
    curated = scaleout["curated"]
    flights = curated[(curated["sched_dep_ts"] >= t0) & (curated["sched_dep_ts"] < t0.ceil("h"))]
    flights = flights.head(40)
    store = feature_store.get_store(settings)
    online = feature_store.online_values(flights, settings, store)
    keys = compute.entity_keys(flights)
    keys[compute.TIMESTAMP] = t0
    offline = store.get_historical_features(
        entity_df=keys, features=store.get_feature_service(FEATURE_SERVICE)
    ).to_df()
    offline = (
        keys[[compute.FLIGHT_DAY]]
        .reset_index()
        .merge(offline, on=compute.FLIGHT_DAY, how="left")
        .set_index("index")
    )
    for col in online.columns:
        a = pd.to_numeric(online[col], errors="coerce") if col != "plane_engine" else online[col]
        b = offline.reindex(online.index)[col]
        b = pd.to_numeric(b, errors="coerce") if col != "plane_engine" else b
        same = (a == b) | (a.isna() & b.isna())
        assert same.all(), f"{col}: online {a[~same].tolist()[:5]} != offline {b[~same].tolist()[:5]}"
    assert online["carrier_flights_28d"].notna().all()
    frame = feature_store.online_frame(flights, settings)
    assert list(frame.columns) == compute.MODEL_FEATURES


def test_training_frame_on_s3_equals_an_independent_point_in_time_join(scaleout):
    """Feast's DuckDB offline store reads the S3 lake (httpfs from the pinned wheel, the lake
    client's endpoint and credentials; no download: no network here) and gives the values of a
    pandas ``merge_asof`` join of the same S3 feature tables."""
    import numpy as np

    from benchmarks.bench_training import pandas_training_frame
    from mlops.features import feast_duckdb

    settings = scaleout["settings"]
    feature_store.apply(settings)
    got = feature_store.training_frame(DAYS[1], "2013-06-15", settings).set_index("flight_id")
    con = feast_duckdb.backend(s3=True).con
    path = con.execute(
        "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'httpfs' AND loaded"
    ).fetchone()[0]
    assert path.startswith(feast_duckdb.httpfs_extension_dir())
    want = pandas_training_frame(DAYS[1], "2013-06-15", settings).set_index("flight_id").reindex(got.index)
    assert len(got) > 500 and want["ds"].notna().all()
    assert got["carrier_flights_28d"].notna().all() and got["wx_temp"].notna().mean() > 0.9
    for col in ["is_delayed", *compute.MODEL_FEATURES]:
        a, b = got[col], want[col]
        if col in compute.CATEGORICAL_FEATURES:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        else:
            same = pd.Series(np.isclose(a.astype(float), b.astype(float), rtol=1e-12, atol=0, equal_nan=True))
        assert bool(np.all(same)), f"{col}: {int((~np.asarray(same)).sum())} values differ"


def test_advisory_lock_excludes_a_second_writer(scaleout):
    import psycopg

    settings = scaleout["settings"]
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with feature_store.registry_lock(settings, timeout=1):
                errors.append(AssertionError("second writer got the lock"))
        except psycopg.errors.LockNotAvailable as exc:
            errors.append(exc)

    with feature_store.registry_lock(settings):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.LockNotAvailable), errors
    with feature_store.registry_lock(settings, timeout=1):  # released: free again
        pass


CONCURRENT = textwrap.dedent(
    """
    from mlops.features import feature_store
    feature_store.apply()
    feature_store.materialize("2013-06-13", "2013-06-14")
    feature_store.apply()
    """
)


@pytest.mark.slow
def test_two_processes_apply_and_materialize_on_the_sql_registry(scaleout):
    env = {**os.environ, **scaleout["env"], "MLOPS_HOME": str(scaleout["settings"].home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    store = feature_store.get_store(scaleout["settings"])
    assert {fv.name for fv in store.list_feature_views()} == set(compute.VIEW_FEATURES)
    # Every service of the repo once (the flight-delay and air-time sets): none applied twice.
    repo = sorted(fs.name for fs in feature_store.load_definitions(scaleout["settings"])["feature_services"])
    assert FEATURE_SERVICE in repo
    assert sorted(fs.name for fs in store.list_feature_services()) == repo
