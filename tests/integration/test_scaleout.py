"""The scale-out topology without Docker, through the real scheduler.

:func:`mlops.dev.stack.local_stack` runs what ``docker-compose.yaml`` runs, configured by the same
variables (:func:`mlops.scaleout.environment`): CeleryExecutor with two ``airflow celery worker``
processes on this machine's PostgreSQL (fresh databases for Airflow, MLflow, MLflow's users and the
Feast registry, and the prediction service's read-only role) and a private ``redis-server`` with a
password (Celery broker and Feast online store), an ``mlflow server`` behind its basic-auth login
on PostgreSQL with artifacts on S3, and moto's S3 server on loopback with IAM enforced holding the
landing zone and the lake.

The least-privilege tests check each account as the compose file hands it out: the prediction
service's PostgreSQL role reads the Feast registry and cannot write it, its S3 account reads the lake
and writes only its prediction log, MLflow refuses anonymous registration and accepts the platform's
login, Redis refuses a client without its password. The pipeline test then serves a prediction with
the service's environment alone.

The pipeline replays a few days with ``airflow backfill create`` / ``airflow dags trigger``; the
assertions read the lake on S3, the MLflow registry and the online store in Redis. A stage runs
only when its DAG file exists, so the test grows with the project. The last test SIGKILLs a Celery
worker (every process under it, like a lost host) in the middle of an ingestion task: the task is
retried on the other worker and the curated partition is whole and unique.

Without PostgreSQL on 127.0.0.1 or ``redis-server`` installed the tests skip, saying which is
missing; under CI=true they fail instead.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from mlops.config import EXPERIMENT_NAME, FEAST_PROJECT, MODEL_NAME
from mlops.dev import embedded
from mlops.dev.demo import ALL_DAGS
from mlops.dev.stack import local_stack, worker_busy
from tests.conftest import IN_CI, REPO, require_service

#: A busy 2-core machine needs more than the suite's default 20 min for the stack and the pipeline.
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3600)]
log = logging.getLogger(__name__)

#: The replayed days (training needs 14 days of window: the minimum of its params).
START, DAYS = date(2013, 1, 1), 14
END = START + timedelta(days=DAYS - 1)
#: A small, fast training run: the smallest window and holdout the params allow, one candidate.
TRAIN_CONF = {
    "as_of": (END + timedelta(days=1)).isoformat(),
    "window_days": 14,
    "holdout_days": 3,
    "n_candidates": 1,
    "n_estimators": 60,
}
#: Days replayed in the worker-kill test (after the main window).
KILL_START, KILL_DAYS = END + timedelta(days=1), 3
STAGE_TIMEOUT = 900


def present_dags() -> list[str]:
    return [d for d in ALL_DAGS if (REPO / "dags" / f"{d}.py").exists()]


def days(start: date, n: int) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def unpause(st, dag_ids: list[str]) -> None:
    """One ``airflow dags unpause`` for all of them (each CLI call costs seconds of CPU)."""
    pattern = "^(" + "|".join(dag_ids) + ")$"
    embedded.airflow(["dags", "unpause", "--treat-dag-id-as-regex", "-y", pattern], env=st.env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_service("PostgreSQL", "127.0.0.1", 5432)
    if shutil.which("redis-server") is None:
        msg = "redis-server is not installed (the stack runs its own, with a password)"
        pytest.fail(f"CI=true and {msg}") if IN_CI else pytest.skip(msg)
    if not present_dags():
        pytest.skip("no stage DAG in dags/ yet")
    work = tmp_path_factory.mktemp("scaleout")
    t0 = time.monotonic()
    # The replay ends with 2013 (as in the embedded profile): unpausing creates no run for today.
    with local_stack(work, workers=2, concurrency=2, schedule_end="2013-12-31", wait_mlflow=False) as st:
        embedded.reserialize(st.env)
        unpause(st, present_dags())
        st.started_in = time.monotonic() - t0  # type: ignore[attr-defined]
        yield st
        for name in ("scheduler", *st.workers):
            path = st.services.log_dir / f"{name}.log"
            if path.exists():
                log.info("%s log tail:\n%s", name, path.read_text(errors="replace")[-2000:])


def backfill_ids(ds_list: list[str]) -> set[str]:
    return {f"backfill__{ds}T00:00:00+00:00" for ds in ds_list}


def backfill(st, dag_id: str, ds_list: list[str], conf=None) -> list[dict]:
    """``airflow backfill create`` over ``ds_list``, then wait for exactly those runs."""
    t0 = time.monotonic()
    embedded.backfill(dag_id, ds_list[0], ds_list[-1], env=st.env, conf=conf, max_active_runs=4)
    runs = st.wait_for_runs(dag_id, len(ds_list), timeout=STAGE_TIMEOUT, run_ids=backfill_ids(ds_list))
    print(f"  {dag_id}: {len(runs)} runs in {time.monotonic() - t0:.0f}s", flush=True)
    return runs


def wait_idle(st, dag_id: str, minimum: int = 1, settle: float = 20) -> list[dict]:
    """Wait for an asset-triggered DAG: at least ``minimum`` runs, none active for ``settle`` s."""
    t0 = time.monotonic()
    deadline, idle_since = t0 + STAGE_TIMEOUT, None
    while time.monotonic() < deadline:
        st.services.check_alive()
        runs = st.dag_runs(dag_id)
        if any(r["state"] not in ("success", "failed") for r in runs) or len(runs) < minimum:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= settle:
            print(f"  {dag_id}: {len(runs)} asset-triggered runs in {idle_since - t0:.0f}s", flush=True)
            return runs
        time.sleep(3)
    raise TimeoutError(f"{dag_id} still busy or without runs after {STAGE_TIMEOUT}s")


def assert_succeeded(runs: list[dict], dag_id: str) -> None:
    failed = [r["run_id"] for r in runs if r["state"] != "success"]
    assert not failed, f"{dag_id}: runs not successful: {failed}"


def objects(st, bucket: str, prefix: str) -> dict[str, int]:
    s3, out = st.s3(), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def read_parquet(st, bucket: str, key: str):
    import pandas as pd

    body = st.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(body))


def landing_rows(st, ds: str) -> int:
    import pandas as pd

    key = f"flights/ds={ds}/flights.csv"
    body = st.s3().get_object(Bucket=st.endpoints.landing_bucket, Key=key)["Body"].read()
    return len(pd.read_csv(io.BytesIO(body)))


def in_stack_python(st, code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter with the stack's environment (as a task would), or ``env``."""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env or st.env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def serve_with_least_privilege(st, ds: str) -> str:
    """``mlops serve`` with the prediction service's environment alone (read-only PostgreSQL role,
    serving S3 account, MLflow reader login, Redis password): it loads @champion and the features,
    answers /predict, and its prediction log lands under predictions_online/."""
    from pathlib import Path

    import httpx

    from mlops.dev.embedded import free_port

    row = read_parquet(st, st.endpoints.lake_bucket, f"curated/flights/ds={ds}/data.parquet").iloc[0]
    flight = {
        "carrier": str(row["carrier"]),
        "flight": int(row["flight"]),
        "origin": str(row["origin"]),
        "dest": str(row["dest"]),
        "sched_dep_ts": row["sched_dep_ts"].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    port, t0 = free_port(), time.monotonic()
    url, log_path = f"http://127.0.0.1:{port}", st.work_dir / "serve.log"
    cmd = [
        str(Path(sys.executable).with_name("mlops")),
        "serve",
        "--port",
        str(port),
        "--log-flush-seconds",
        "1",
    ]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, env=st.serving_env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        health: dict = {}
        while time.monotonic() - t0 < STAGE_TIMEOUT:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                resp = httpx.get(f"{url}/health", timeout=10)
                health = resp.json()
                if resp.status_code == 200:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        else:
            raise AssertionError(
                f"mlops serve not healthy: {health}\n{log_path.read_text(errors='replace')[-3000:]}"
            )
        answer = httpx.post(f"{url}/predict", json={"flights": [flight]}, timeout=60)
        assert answer.status_code == 200, answer.text
        logged: dict = {}
        while not logged and time.monotonic() - t0 < STAGE_TIMEOUT:
            logged = objects(st, st.endpoints.lake_bucket, "predictions_online/")
            time.sleep(1)
        assert logged, f"no prediction log written:\n{log_path.read_text(errors='replace')[-3000:]}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return (
        f"prediction service with its own accounts only: @champion v{health['model']['version']} loaded, "
        f"/predict answered, {len(logged)} prediction log file(s) written in {time.monotonic() - t0:.0f}s"
    )


def assert_curated_partitions(st, ds_list: list[str]) -> None:
    """Each curated partition: exactly one data file, complete, no duplicated row."""
    lake = st.endpoints.lake_bucket
    for ds in ds_list:
        prefix = f"curated/flights/ds={ds}/"
        files = objects(st, lake, prefix)
        assert list(files) == [f"{prefix}data.parquet"], f"ds={ds}: objects {sorted(files)}"
        frame = read_parquet(st, lake, f"{prefix}data.parquet")
        assert len(frame) > 0, f"ds={ds}: empty partition"
        assert not frame.duplicated().any(), f"ds={ds}: duplicated rows"
        assert len(frame) <= landing_rows(st, ds), f"ds={ds}: more curated rows than landed"


def curated_events(st) -> dict[str, dict]:
    """The ``curated_flights`` asset events' metadata by ``ds`` (the latest per day)."""
    rows = st.sql(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = %s ORDER BY e.timestamp",
        ("curated_flights",),
    )
    events = [extra if isinstance(extra, dict) else json.loads(extra) for (extra,) in rows]
    return {e["ds"]: e for e in events if e.get("ds")}


# ------------------------------------------------------------------------------------------- tests


def test_api_requires_the_operator_set_login(stack):
    """The UI/API refuses anonymous and wrong-password requests; the password the init step wrote
    (in compose: AIRFLOW_ADMIN_PASSWORD from .env) logs in."""
    import httpx

    base = stack.api_url
    assert httpx.get(f"{base}/api/v2/dags", timeout=60).status_code == 401
    wrong = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=60)
    assert wrong.status_code == 401
    good = httpx.post(
        f"{base}/auth/token", json={"username": "admin", "password": stack.admin_password}, timeout=60
    )
    assert good.status_code in (200, 201), good.text
    token = good.json()["access_token"]
    listed = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert listed.status_code == 200


def test_serving_db_role_reads_the_feast_registry_and_cannot_write_it(stack):
    """The prediction service's PostgreSQL role (compose: POSTGRES_READER_USER, created by
    airflow-init) opens the Feast registry the platform applied, but cannot change a row, create a
    table or even connect to another database, also after turning its read-only default off."""
    import psycopg
    from psycopg import errors

    st = stack
    applied = in_stack_python(
        st,
        "import json; from mlops.features.feature_store import apply; print(json.dumps(sorted(apply()['feature_views'])))",
    )
    assert json.loads(applied), "the platform applied no feature view"
    listed = in_stack_python(
        st,
        "import json; from mlops.features.feature_store import get_store; "
        "print(json.dumps(sorted(v.name for v in get_store().list_feature_views())))",
        env=st.serving_env,
    )
    assert listed == applied, "the service's role does not read the registry the platform wrote"

    registry = json.loads(st.serving_env["MLOPS_FEAST_REGISTRY"])
    url = registry["path"].replace("postgresql+psycopg://", "postgresql://", 1)
    assert url.startswith(f"postgresql://{st.endpoints.postgres_reader_user}:")
    assert st.endpoints.postgres_reader_user != st.endpoints.postgres_user
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM feature_views").fetchone()[0] == len(json.loads(applied))
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM feature_views")
        # Past the read-only default: the grants themselves refuse every write.
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "DELETE FROM feature_views",
            "UPDATE feast_metadata SET metadata_value = 'x'",
            "INSERT INTO projects (project_id, project_name, last_updated_timestamp, project_proto) "
            "VALUES ('x', 'x', 0, ''::bytea)",
            "CREATE TABLE probe (x int)",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    airflow_db = url.rsplit("/", 1)[0] + f"/{st.endpoints.airflow_db}"
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(airflow_db).close()
    refused = in_stack_python(
        st,
        "from feast import Entity\nfrom mlops.features.feature_store import get_store\n"
        "try:\n    get_store().apply([Entity(name='probe', join_keys=['probe_id'])])\n    print('applied')\n"
        "except Exception as exc:\n    print(type(exc).__name__, str(exc).splitlines()[0])",
        env=st.serving_env,
    )
    # Feast's own write (the role's read-only default refuses it first; the grants would next).
    assert refused.startswith("InternalError") and "read-only transaction" in refused, refused


def test_serving_s3_account_reads_the_lake_and_writes_only_its_prediction_log(stack):
    """The prediction service's S3 account (compose: MLOPS_S3_SERVING_*, policy mlops-serving):
    it reads the lake, writes under predictions_online/ only, and reaches no other bucket; moto
    checks every signature and IAM policy as MinIO does."""
    from botocore.exceptions import ClientError

    st = stack
    lake, landing = st.endpoints.lake_bucket, st.endpoints.landing_bucket
    assert st.serving_env["AWS_ACCESS_KEY_ID"] == st.secrets.s3_serving_access_key != st.secrets.s3_access_key
    platform, serving = st.s3(), st.s3(serving=True)
    platform.put_object(Bucket=lake, Key="curated/probe/data.txt", Body=b"platform")
    platform.put_object(Bucket=landing, Key="probe/data.txt", Body=b"landing")
    try:
        assert serving.get_object(Bucket=lake, Key="curated/probe/data.txt")["Body"].read() == b"platform"
        assert "curated/probe/data.txt" in objects_with(serving, lake, "curated/probe/")
        serving.put_object(Bucket=lake, Key="predictions_online/ds=2013-01-01/probe.parquet", Body=b"log")

        def denied(call, *args, **kwargs) -> str:
            with pytest.raises(ClientError) as exc:
                call(*args, **kwargs)
            return exc.value.response["Error"]["Code"]

        assert (
            denied(serving.put_object, Bucket=lake, Key="curated/probe/data.txt", Body=b"x") == "AccessDenied"
        )
        assert (
            denied(serving.put_object, Bucket=lake, Key="features/probe.parquet", Body=b"x") == "AccessDenied"
        )
        assert denied(serving.delete_object, Bucket=lake, Key="curated/probe/data.txt") == "AccessDenied"
        assert denied(serving.put_object, Bucket=landing, Key="probe/x.txt", Body=b"x") == "AccessDenied"
        assert denied(serving.get_object, Bucket=landing, Key="probe/data.txt") == "AccessDenied"
        assert (
            denied(serving.get_object, Bucket=st.endpoints.mlflow_bucket, Key="artifacts/x") == "AccessDenied"
        )
        import boto3

        stranger = boto3.client(
            "s3",
            endpoint_url=st.endpoints.s3_endpoint,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region_name="us-east-1",
        )
        assert denied(stranger.list_objects_v2, Bucket=lake) == "InvalidAccessKeyId"
        assert platform.get_object(Bucket=lake, Key="curated/probe/data.txt")["Body"].read() == b"platform"
    finally:
        for bucket, key in (
            (lake, "curated/probe/data.txt"),
            (lake, "predictions_online/ds=2013-01-01/probe.parquet"),
            (landing, "probe/data.txt"),
        ):
            platform.delete_object(Bucket=bucket, Key=key)


def objects_with(client, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_mlflow_requires_a_login(stack):
    """The MLflow server runs its basic-auth app: anonymous or wrong-password registration is 401;
    the platform's login (what every worker uses) registers; the prediction service's read-only
    login reads the platform's model but cannot move its alias, add a version, rename or delete it
    (403). (Without MLflow workspaces, any login may still create models of its own.)"""
    import httpx

    st = stack
    st.mlflow_ready()
    base = st.endpoints.mlflow_url
    api = f"{base}/api/2.0/mlflow"
    name = f"probe_{st.run_id}"
    admin = (st.env["MLFLOW_TRACKING_USERNAME"], st.env["MLFLOW_TRACKING_PASSWORD"])
    reader = (st.serving_env["MLFLOW_TRACKING_USERNAME"], st.serving_env["MLFLOW_TRACKING_PASSWORD"])
    assert admin[0] == st.endpoints.mlflow_admin_user and reader[0] == st.endpoints.mlflow_reader_user

    def call(method: str, path: str, auth=None, **kwargs) -> int:
        return httpx.request(method, f"{api}/{path}", auth=auth, timeout=60, **kwargs).status_code

    assert httpx.get(f"{base}/health", timeout=60).status_code == 200  # the health check needs no login
    assert call("POST", "registered-models/create", json={"name": name}) == 401
    assert (
        call("POST", "registered-models/create", (admin[0], "wrong-password-1"), json={"name": name}) == 401
    )
    assert call("GET", "registered-models/search") == 401
    assert call("POST", "registered-models/create", admin, json={"name": name}) == 200
    try:
        assert call("GET", "registered-models/get", reader, params={"name": name}) == 200
        alias = {"name": name, "alias": "champion", "version": "1"}
        assert call("POST", "registered-models/alias", reader, json=alias) == 403
        version = {"name": name, "source": "mlflow-artifacts:/probe"}
        assert call("POST", "model-versions/create", reader, json=version) == 403
        assert (
            call("POST", "registered-models/rename", reader, json={"name": name, "new_name": f"{name}_x"})
            == 403
        )
        assert call("DELETE", "registered-models/delete", reader, json={"name": name}) == 403
    finally:
        assert call("DELETE", "registered-models/delete", admin, json={"name": name}) == 200


def test_redis_requires_its_password(stack):
    """The stack's Redis (its own redis-server, as compose's redis service: requirepass) refuses a
    client without the password; the broker URL and the Feast online store carry it; the shared
    Redis on 6379 keeps no password."""
    import redis

    st = stack
    password = st.secrets.redis_password
    with pytest.raises(redis.AuthenticationError):
        st.redis(password="").ping()
    with pytest.raises(redis.AuthenticationError):
        st.redis(password="wrong-password").ping()
    assert st.redis().ping()
    assert st.env["AIRFLOW__CELERY__BROKER_URL"].startswith(f"redis://:{password}@127.0.0.1:")
    for env in (st.env, st.serving_env):
        online = json.loads(env["MLOPS_FEAST_ONLINE_STORE"])
        assert online["connection_string"].endswith(f",password={password}")
    assert st.endpoints.redis_port != 6379, "the stack must not use (or set a password on) the shared Redis"


def test_pipeline_on_celery_postgres_redis_s3(stack, record_property):
    st, present = stack, present_dags()
    t0 = time.monotonic()
    print(f"\nscale-out stack {st.run_id} up in {st.started_in:.0f}s; DAGs: {', '.join(present)}", flush=True)
    window = days(START, DAYS)
    checked: list[str] = []

    if "flights_upstream_simulator" in present:
        assert_succeeded(backfill(st, "flights_upstream_simulator", window), "simulator")
        landed = objects(st, st.endpoints.landing_bucket, "flights/")
        assert {f"flights/ds={ds}/flights.csv" for ds in window} <= set(landed)
        checked.append(f"landing: {DAYS} daily exports on S3")

    if "ingest_flights" in present:
        assert_succeeded(backfill(st, "ingest_flights", window), "ingest_flights")
        assert_curated_partitions(st, window)
        events = curated_events(st)
        for ds in window:
            frame = read_parquet(st, st.endpoints.lake_bucket, f"curated/flights/ds={ds}/data.parquet")
            assert events[ds]["rows"] == len(frame), f"ds={ds}: asset event says {events[ds]['rows']} rows"
        spread = worker_busy(st.task_instances("ingest_flights"))
        print(f"  ingest over the workers: {json.dumps(spread)}", flush=True)
        assert set(spread["tasks"]) == set(st.workers), f"tasks did not run on both workers: {spread}"
        checked.append(
            f"curated lake: {DAYS} partitions, one parquet each, no duplicates, rows as in the asset "
            f"events; tasks on both workers {spread['tasks']}"
        )

    # The second feed: training joins the day's weather (a window without it fails to build).
    if "ingest_weather" in present:
        assert_succeeded(backfill(st, "ingest_weather", window), "ingest_weather")
        landed = objects(st, st.endpoints.lake_bucket, "curated/weather/")
        assert {f"curated/weather/ds={ds}/data.parquet" for ds in window} <= set(landed)
        checked.append(f"curated weather: {DAYS} partitions on S3")

    if "materialize_features" in present and "ingest_flights" in present:
        assert_succeeded(wait_idle(st, "materialize_features"), "materialize_features")
        features = objects(st, st.endpoints.lake_bucket, "features/")
        # Every curated day has its feature tables (the last one materialize_features writes), also
        # the days whose curated_flights events arrived while a run was queued (see its plan task).
        missing = [
            ds for ds in window if f"features/aircraft_previous_leg/ds={ds}/data.parquet" not in features
        ]
        assert not missing, f"no feature tables for {missing}"
        keys = [k for k in st.redis().scan_iter(count=1000) if FEAST_PROJECT.encode() in k]
        assert keys, f"no Feast online rows in Redis db {st.endpoints.redis_db}"
        views = in_stack_python(
            st,
            "from mlops.features.feature_store import get_store; s = get_store(); "
            "print(sorted(v.name for v in s.list_feature_views()))",
        )
        assert views != "[]", "the Feast SQL registry holds no feature view"
        checked.append(
            f"Feast: {len(features)} offline files on S3, {len(keys)} online keys in Redis, "
            f"SQL registry on PostgreSQL with {views}"
        )

    if "train_model" in present and "materialize_features" in present:
        t1 = time.monotonic()
        st.mlflow_ready()
        embedded.trigger("train_model", st.env, conf=TRAIN_CONF, run_id="scaleout_train")
        runs = st.wait_for_runs("train_model", 1, timeout=STAGE_TIMEOUT, run_ids={"scaleout_train"})
        assert_succeeded(runs, "train_model")
        print(f"  train_model: 1 run in {time.monotonic() - t1:.0f}s", flush=True)
        champion = json.loads(
            in_stack_python(
                st,
                "import json, mlflow; c = mlflow.MlflowClient(); "
                f"v = c.get_model_version_by_alias({MODEL_NAME!r}, 'champion'); "
                "r = c.get_run(v.run_id); "
                f"e = c.get_experiment_by_name({EXPERIMENT_NAME!r}); "
                "print(json.dumps({'version': v.version, 'run': v.run_id, 'experiment': e.experiment_id,"
                " 'artifact_uri': r.info.artifact_uri}))",
            )
        )
        assert champion["artifact_uri"].startswith("mlflow-artifacts:"), champion  # proxied by the server
        stored = objects(st, st.endpoints.mlflow_bucket, "artifacts/")
        assert any(champion["run"] in k for k in stored), "the champion's artifacts are not on S3"
        checked.append(
            f"MLflow server on PostgreSQL: {MODEL_NAME}@champion = v{champion['version']}, "
            f"its artifacts on S3 through the server"
        )

    if "batch_predict" in present and "train_model" in present:
        scored = window[-2:]
        assert_succeeded(backfill(st, "batch_predict", scored), "batch_predict")
        for ds in scored:
            frame = read_parquet(st, st.endpoints.lake_bucket, f"predictions/ds={ds}/data.parquet")
            assert len(frame) > 0, f"no predictions for {ds}"
        checked.append(f"predictions: {len(scored)} days on S3")
        checked.append(serve_with_least_privilege(st, scored[-1]))

    if "monitor_drift" in present and "batch_predict" in present:
        monitored = window[-2:]
        assert_succeeded(backfill(st, "monitor_drift", monitored), "monitor_drift")
        for ds in monitored:
            assert objects(st, st.endpoints.lake_bucket, f"reports/drift/ds={ds}/"), f"no drift report {ds}"
        checked.append(f"drift reports: {len(monitored)} days on S3")

    wall = time.monotonic() - t0
    record_property("pipeline_seconds", round(wall, 1))
    record_property("stack_start_seconds", round(st.started_in, 1))
    print(f"  pipeline wall time {wall:.0f}s (+ {st.started_in:.0f}s stack start); checked:", flush=True)
    for line in checked:
        print(f"   - {line}", flush=True)
    assert checked, "no stage ran"


def test_killed_worker_task_is_retried_on_the_other_worker(stack, record_property):
    """SIGKILL the worker whose ``publish`` task is writing a curated partition (every process under
    it, like a lost host): the task is retried on the other worker, and each partition is whole and
    unique. The S3 endpoint holds that one PUT for a while, so the kill lands mid-write."""
    st, present = stack, present_dags()
    if not {"flights_upstream_simulator", "ingest_flights"} <= set(present):
        pytest.skip("needs flights_upstream_simulator and ingest_flights")
    window = days(KILL_START, KILL_DAYS)
    target = window[1]
    lake = st.endpoints.lake_bucket
    assert_succeeded(backfill(st, "flights_upstream_simulator", window), "simulator")
    writing = st.s3_gate.hold(lake, f"curated/flights/ds={target}/", seconds=20)
    t0 = time.monotonic()
    embedded.backfill("ingest_flights", window[0], window[-1], env=st.env, max_active_runs=4)
    assert writing.wait(STAGE_TIMEOUT), f"ds={target}: the curated partition was never written"
    victim = next(
        t
        for t in st.task_instances("ingest_flights")
        if t["task_id"] == "publish" and target in t["run_id"] and t["state"] == "running"
    )
    assert victim["hostname"] in st.workers, victim
    assert not objects(st, lake, f"curated/flights/ds={target}/"), "partition visible before its write"
    killed = st.kill_worker(victim["hostname"])
    survivor = next(w for w in st.workers if w != victim["hostname"])
    print(
        f"\n  SIGKILL {victim['hostname']} ({len(killed)} processes) while its publish of ds={target} "
        f"was writing data.parquet (try {victim['try_number']})",
        flush=True,
    )
    runs = st.wait_for_runs("ingest_flights", KILL_DAYS, timeout=STAGE_TIMEOUT, run_ids=backfill_ids(window))
    wall = time.monotonic() - t0
    assert_succeeded(runs, "ingest_flights")
    retried = next(
        t for t in st.task_instances("ingest_flights") if t["task_id"] == "publish" and target in t["run_id"]
    )
    assert retried["state"] == "success"
    assert retried["try_number"] > victim["try_number"], f"not retried: {retried}"
    assert retried["hostname"] == survivor, f"retried on {retried['hostname']}, expected {survivor}"
    history = st.sql(
        "SELECT try_number, hostname, state FROM task_instance_history "
        "WHERE dag_id = 'ingest_flights' AND task_id = 'publish' AND run_id = %s",
        (retried["run_id"],),
    )
    assert (victim["try_number"], victim["hostname"], "failed") in history, history
    assert_curated_partitions(st, window)
    frame = read_parquet(st, lake, f"curated/flights/ds={target}/data.parquet")
    event = curated_events(st)[target]
    assert event["rows"] == len(frame), (event, len(frame))
    record_property("worker_kill_recovery_seconds", round(wall, 1))
    print(
        f"  publish of ds={target} failed on {victim['hostname']} (heartbeat lost), retried on {survivor} "
        f"as try {retried['try_number']}; {KILL_DAYS} partitions whole and unique ({len(frame)} rows "
        f"in ds={target}, as its asset event says); the backfill finished in {wall:.0f}s",
        flush=True,
    )
