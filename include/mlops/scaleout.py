"""The scale-out profile: its environment, its provisioning, and a no-Docker stack of it.

:func:`environment` is the one place that says which variables every Airflow process of the
scale-out profile gets (:func:`mlops_environment`, its non-Airflow part, is what the prediction
service gets; :func:`mlflow_server_environment` the MLflow server). ``docker-compose.yaml`` mirrors
them in ``x-airflow-env``, ``x-mlops-env`` and its ``mlflow`` service, and
``tests/integration/test_compose_config.py`` checks that mirror: it renders
``environment(compose_endpoints(.env.example), compose_secrets(.env.example))`` and compares it,
key by key, with what ``docker-compose config`` resolves.

:func:`local_stack` runs the same topology on this machine, without Docker: a fresh PostgreSQL
database each for the Airflow metadata, the MLflow backend store and the Feast registry; a Redis
database for the Celery broker and the Feast online store; moto's S3 server on loopback for the
landing zone, the lake and the MLflow artifacts; an ``mlflow server`` process; the Airflow
api-server, scheduler, dag-processor, triggerer and N ``airflow celery worker`` processes. It
drops what it created on exit, also after a failure. :class:`S3Gate` can hold one S3 write for a
while, so a test can kill a worker in the middle of it.

``python -m mlops.scaleout init`` is the compose init job: it refuses placeholder secrets,
creates the extra databases, writes the UI login and migrates the Airflow metadata database.

Importing this module is cheap (standard library only); it has no side effects.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from mlops.config import FEAST_PROJECT, QUIET_LOGGERS, REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

    from mlops.embedded import Services

log = logging.getLogger(__name__)

#: Buckets of the scale-out profile (DESIGN.md: s3://mlops-landing, s3://mlops-lake).
LANDING_BUCKET = "mlops-landing"
LAKE_BUCKET = "mlops-lake"
MLFLOW_BUCKET = "mlops-mlflow"
#: Airflow components besides the workers (each its own process or container).
CONTROL_PLANE = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Prefix of everything the local stack creates (databases, Redis claim), for finding leftovers.
RUN_PREFIX = "mlops_so_"
_REDIS_CLAIM_KEY = "mlops:scaleout:claim"
#: Values in .env.example that must never reach a running stack.
PLACEHOLDER_PREFIX = "change-me"


@dataclass(frozen=True)
class Secrets:
    """Every credential of the stack. In compose they come from ``.env``; locally they are generated."""

    postgres_password: str
    s3_access_key: str
    s3_secret_key: str
    fernet_key: str
    jwt_secret: str
    api_secret_key: str

    @classmethod
    def generate(
        cls, postgres_password: str = "", s3_access_key: str = "", s3_secret_key: str = ""
    ) -> Secrets:
        from cryptography.fernet import Fernet

        return cls(
            postgres_password=postgres_password,
            s3_access_key=s3_access_key or f"mlops{secrets.token_hex(4)}",
            s3_secret_key=s3_secret_key or secrets.token_urlsafe(24),
            fernet_key=Fernet.generate_key().decode(),
            jwt_secret=secrets.token_urlsafe(32),
            api_secret_key=secrets.token_urlsafe(32),
        )


@dataclass(frozen=True)
class Endpoints:
    """Where the services of the topology listen, and the names of what they hold."""

    postgres_host: str
    postgres_port: int
    postgres_user: str
    airflow_db: str
    mlflow_db: str
    feast_db: str
    redis_host: str
    redis_port: int
    redis_db: int
    s3_endpoint: str
    mlflow_url: str
    #: The api-server as the other Airflow processes reach it (the Execution API lives under it).
    api_internal_url: str
    #: The api-server as a browser reaches it.
    api_public_url: str
    #: The project tree holding dags/, plugins/ and feature_repo/.
    repo_root: str
    mlops_home: str
    passwords_file: str
    admin_user: str = "admin"
    s3_region: str = "us-east-1"
    landing_bucket: str = LANDING_BUCKET
    lake_bucket: str = LAKE_BUCKET
    mlflow_bucket: str = MLFLOW_BUCKET
    #: Redis database of the Feast online store (None: the broker's).
    feast_redis_db: int | None = None
    worker_concurrency: int = 2
    #: Seconds without a task heartbeat before the scheduler fails (and retries) the task.
    heartbeat_timeout: int = 60
    #: ``MLOPS_SCHEDULE_END``: "2013-12-31" replays 2013 only (no run for today on unpause); "" no end.
    schedule_end: str = ""


def postgres_url(e: Endpoints, s: Secrets, database: str, driver: str = "postgresql") -> str:
    auth = quote(e.postgres_user, safe="")
    if s.postgres_password:
        auth += ":" + quote(s.postgres_password, safe="")
    return f"{driver}://{auth}@{e.postgres_host}:{e.postgres_port}/{database}"


def redis_url(e: Endpoints) -> str:
    return f"redis://{e.redis_host}:{e.redis_port}/{e.redis_db}"


def aws_connection(e: Endpoints, s: Secrets) -> str:
    """``AIRFLOW_CONN_AWS_DEFAULT``: the S3 endpoint and credentials, as Airflow's JSON connection."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": s.s3_access_key,
            "password": s.s3_secret_key,
            "extra": {"endpoint_url": e.s3_endpoint, "region_name": e.s3_region},
        }
    )


def mlops_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The ``mlops`` variables (no Airflow): the prediction service gets these (compose: x-mlops-env)."""
    return {
        # The contract of DESIGN.md (Configuration).
        "MLOPS_HOME": e.mlops_home,
        "MLOPS_LANDING_URI": f"s3://{e.landing_bucket}",
        "MLOPS_LAKE_URI": f"s3://{e.lake_bucket}",
        "MLFLOW_TRACKING_URI": e.mlflow_url,
        # The standard AWS variables, for readers that do not go through Airflow (Feast's offline
        # store reads s3:// with pyarrow; mlops.lake's default client).
        "AWS_ENDPOINT_URL": e.s3_endpoint,
        "AWS_ACCESS_KEY_ID": s.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3_secret_key,
        "AWS_DEFAULT_REGION": e.s3_region,
        # Feast (feature_repo/feature_store.yaml): the SQL registry on PostgreSQL, Redis online store.
        **feast_environment(e, s),
        # Last logical date of the time schedules (mlops.airflow.defaults); empty: no end.
        "MLOPS_SCHEDULE_END": e.schedule_end,
        # Nothing reports usage to the outside.
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
        "FEAST_USAGE": "False",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "GIT_PYTHON_REFRESH": "quiet",
    }


def environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The variables every Airflow process of the scale-out profile gets (compose: x-airflow-env)."""
    repo = e.repo_root.rstrip("/")
    return {
        **mlops_environment(e, s),
        # S3 for tasks: the aws_default connection (mlops.airflow.storage builds the client from it).
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(e, s),
        # Airflow: CeleryExecutor on PostgreSQL and Redis.
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url(e, s, e.airflow_db, "postgresql+psycopg2"),
        "AIRFLOW__CELERY__BROKER_URL": redis_url(e),
        "AIRFLOW__CELERY__RESULT_BACKEND": postgres_url(e, s, e.airflow_db, "db+postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(e.worker_concurrency),
        # The promotion lock and the retrain guard's lock (mlops.registry.promotion_lock): PostgreSQL
        # advisory locks in one database every worker shares (a file lock serializes one host only).
        "MLOPS_LOCK_URL": postgres_url(e, s, e.airflow_db),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{e.api_internal_url.rstrip('/')}/execution/",
        "AIRFLOW__API__BASE_URL": e.api_public_url,
        "AIRFLOW__CORE__DAGS_FOLDER": f"{repo}/dags",
        "AIRFLOW__CORE__PLUGINS_FOLDER": f"{repo}/plugins",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"(airflow|mlops)\..*",
        # Shared secrets: Fernet for connections, JWT for task tokens, the API's session key.
        "AIRFLOW__CORE__FERNET_KEY": s.fernet_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": s.jwt_secret,
        "AIRFLOW__API__SECRET_KEY": s.api_secret_key,
        # The UI login: one admin whose password the operator sets (written by the init job).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{e.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": e.passwords_file,
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": " ".join(f"{k}={v}" for k, v in QUIET_LOGGERS.items()),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(e.heartbeat_timeout),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
        # A busy api-server answers the task SDK slower than the default 5 s; wait, don't fail the task.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
    }


def feast_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The variables ``feature_repo/feature_store.yaml`` reads (see :mod:`mlops.feature_store`)."""
    registry = {
        "registry_type": "sql",
        "path": postgres_url(e, s, e.feast_db, driver="postgresql+psycopg"),
        "cache_ttl_seconds": 60,
    }
    redis_db = e.redis_db if e.feast_redis_db is None else e.feast_redis_db
    online = {"type": "redis", "connection_string": f"{e.redis_host}:{e.redis_port},db={redis_db}"}
    return {
        "MLOPS_FEAST_PROJECT": FEAST_PROJECT,
        "MLOPS_FEAST_REGISTRY": json.dumps(registry),
        "MLOPS_FEAST_ONLINE_STORE": json.dumps(online),
    }


def mlflow_server_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The MLflow tracking server's variables: PostgreSQL backend store, artifacts proxied to S3.

    The store URIs go in the environment (``mlflow server`` reads them there), not on the command line
    where ``ps`` would show the database password.
    """
    return {
        "MLFLOW_BACKEND_STORE_URI": postgres_url(e, s, e.mlflow_db),
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{e.mlflow_bucket}/artifacts",
        "MLFLOW_S3_ENDPOINT_URL": e.s3_endpoint,
        "AWS_ACCESS_KEY_ID": s.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3_secret_key,
        "AWS_DEFAULT_REGION": e.s3_region,
        # MLflow 3's server otherwise forks a job runner with seven huey consumers (GenAI jobs this
        # project does not use): about 1.8 GB and a share of two cores for nothing.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def mlflow_server_args(host: str, port: int, workers: int) -> list[str]:
    """``mlflow server`` arguments (the stores come from :func:`mlflow_server_environment`)."""
    return ["server", "--host", host, "--port", str(port), "--workers", str(workers)]


# --------------------------------------------------------------------------------------------
# docker-compose.yaml: the service names and fixed paths of the containers.

COMPOSE_REPO_ROOT = "/opt/mlops"


def compose_endpoints(values: Mapping[str, str]) -> Endpoints:
    """The endpoints as the containers of docker-compose.yaml see them (``values``: the .env file)."""
    return Endpoints(
        postgres_host="postgres",
        postgres_port=5432,
        postgres_user=values["POSTGRES_USER"],
        airflow_db="airflow",
        mlflow_db="mlflow",
        feast_db="feast",
        redis_host="redis",
        redis_port=6379,
        redis_db=0,
        feast_redis_db=1,
        s3_endpoint="http://minio:9000",
        mlflow_url="http://mlflow:5000",
        api_internal_url="http://airflow-api-server:8080",
        api_public_url=f"http://localhost:{values.get('AIRFLOW_API_PORT') or 8080}",
        repo_root=COMPOSE_REPO_ROOT,
        mlops_home="/opt/airflow/mlops",
        passwords_file="/opt/airflow/auth/passwords.json",
        admin_user=values.get("AIRFLOW_ADMIN_USER") or "admin",
        worker_concurrency=int(values.get("AIRFLOW_WORKER_CONCURRENCY") or 2),
        schedule_end=values.get("MLOPS_SCHEDULE_END", ""),
    )


def compose_secrets(values: Mapping[str, str]) -> Secrets:
    return Secrets(
        postgres_password=values["POSTGRES_PASSWORD"],
        s3_access_key=values["MLOPS_S3_ACCESS_KEY"],
        s3_secret_key=values["MLOPS_S3_SECRET_KEY"],
        fernet_key=values["AIRFLOW_FERNET_KEY"],
        jwt_secret=values["AIRFLOW_JWT_SECRET"],
        api_secret_key=values["AIRFLOW_API_SECRET_KEY"],
    )


# --------------------------------------------------------------------------------------------
# Provisioning, shared by the compose init job and the local stack.

SECRET_VARIABLES = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
)


def check_secrets(env: Mapping[str, str], extra: Sequence[str] = ()) -> None:
    """Refuse to start with a secret that is unset or still the .env.example placeholder."""
    bad = [
        name
        for name in (*SECRET_VARIABLES, *extra)
        if not env.get(name) or env[name].startswith(PLACEHOLDER_PREFIX)
    ]
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if PLACEHOLDER_PREFIX in conn:
        bad.append("POSTGRES_PASSWORD (in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)")
    if PLACEHOLDER_PREFIX in env.get("AIRFLOW_CONN_AWS_DEFAULT", ""):
        bad.append("MLOPS_S3_ACCESS_KEY/MLOPS_S3_SECRET_KEY (in AIRFLOW_CONN_AWS_DEFAULT)")
    if bad:
        raise SystemExit(
            "Refusing to start: these secrets are unset or still the .env.example placeholder: "
            + ", ".join(bad)
            + ". Set them in .env (see .env.example for how to generate each), then rerun "
            "`docker-compose up`."
        )
    from cryptography.fernet import Fernet

    try:
        Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())
    except ValueError as exc:
        raise SystemExit(
            "AIRFLOW_FERNET_KEY is not a Fernet key (32 url-safe base64-encoded bytes); generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from exc


def _admin_connect(sqlalchemy_url: str) -> Any:
    """A psycopg2 connection (autocommit) to the ``postgres`` database of the server in the URL."""
    import psycopg2

    u = urlparse(sqlalchemy_url)
    conn = psycopg2.connect(
        host=u.hostname,
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password or None,
        dbname="postgres",
        connect_timeout=10,
    )
    conn.autocommit = True
    return conn


def create_databases(server_url: str, names: Sequence[str]) -> list[str]:
    """Create the databases in ``names`` that do not exist yet; returns those it created."""
    created = []
    conn = _admin_connect(server_url)
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{_ident(name)}"')
                    created.append(name)
    finally:
        conn.close()
    return created


def drop_databases(server_url: str, names: Sequence[str]) -> None:
    conn = _admin_connect(server_url)
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{_ident(name)}" WITH (FORCE)')
    finally:
        conn.close()


def drop_stale_databases(server_url: str, older_than_hours: float = 12) -> list[str]:
    """Drop the databases of local stacks that never cleaned up (their process was killed)."""
    import re

    conn = _admin_connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (RUN_PREFIX + "%",))
            names = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    cutoff = time.time() - older_than_hours * 3600
    # Names are RUN_PREFIX + unix time + "_" + random hex + "_" + role (see local_stack).
    pattern = re.compile(rf"{RUN_PREFIX}(\d{{10}})_[0-9a-f]{{6}}_(airflow|mlflow|feast)$")
    stale = [n for n in names if (m := pattern.match(n)) and 1_600_000_000 < int(m.group(1)) < cutoff]
    if stale:
        log.warning("dropping %d databases left by killed scale-out runs: %s", len(stale), stale)
        drop_databases(server_url, stale)
    return stale


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def write_passwords_file(path: Path, users: Mapping[str, str]) -> None:
    """The simple auth manager's passwords file (JSON ``{user: password}``), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(users), fh)
        fh.write("\n")


def create_buckets(endpoint: str, access_key: str, secret_key: str, buckets: Sequence[str]) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def init(env: Mapping[str, str], databases: Sequence[str], admin_password: str, quiet: bool = False) -> None:
    """The compose init job: check secrets, create databases, write the UI login, migrate Airflow.

    ``quiet`` keeps ``airflow db migrate``'s output unless it fails.
    """
    check_secrets(env)
    if not admin_password or admin_password.startswith(PLACEHOLDER_PREFIX):
        raise SystemExit("Refusing to start: set AIRFLOW_ADMIN_PASSWORD in .env (the Airflow UI login).")
    created = create_databases(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], databases)
    log.info("databases created: %s", created or "none (all existed)")
    user = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")[0].split(":")[0]
    write_passwords_file(
        Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]), {user: admin_password}
    )
    proc = subprocess.run(
        [_airflow_executable(), "db", "migrate"], env=dict(env), capture_output=quiet, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`airflow db migrate` failed ({proc.returncode}):\n{(proc.stderr or '')[-3000:]}")


def _airflow_executable() -> str:
    """``airflow`` beside this interpreter (a virtualenv), else the one on PATH (the Airflow image)."""
    import shutil

    sibling = Path(sys.executable).parent / "airflow"
    return str(sibling) if sibling.exists() else shutil.which("airflow") or "airflow"


def worker_hostname() -> str:
    """``[core] hostname_callable`` for workers sharing one machine: ``MLOPS_WORKER_NAME`` or the FQDN."""
    import socket

    return os.environ.get("MLOPS_WORKER_NAME") or socket.getfqdn()


# --------------------------------------------------------------------------------------------
# The local stack: the same topology as processes on this machine.


@dataclass
class LocalStack:
    """A running no-Docker scale-out stack (see :func:`local_stack`)."""

    run_id: str
    endpoints: Endpoints
    secrets: Secrets
    env: dict[str, str]
    services: Services
    workers: tuple[str, ...]
    work_dir: Path
    admin_password: str
    s3_gate: S3Gate
    #: Wait until the MLflow server answers (see ``local_stack(wait_mlflow=...)``).
    mlflow_ready: Callable[..., None]
    killed: set[str] = field(default_factory=set)

    @property
    def api_url(self) -> str:
        return self.endpoints.api_public_url

    def s3(self) -> Any:
        """A boto3 S3 client on the stack's endpoint."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoints.s3_endpoint,
            aws_access_key_id=self.secrets.s3_access_key,
            aws_secret_access_key=self.secrets.s3_secret_key,
            region_name=self.endpoints.s3_region,
        )

    def redis(self) -> Any:
        import redis

        e = self.endpoints
        return redis.Redis(host=e.redis_host, port=e.redis_port, db=e.redis_db)

    def sql(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run a read query on the Airflow metadata database."""
        import psycopg2

        e, s = self.endpoints, self.secrets
        conn = psycopg2.connect(
            host=e.postgres_host,
            port=e.postgres_port,
            user=e.postgres_user,
            password=s.postgres_password or None,
            dbname=e.airflow_db,
        )
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Runs of ``dag_id`` from the metadata database (cheaper than ``airflow dags list-runs``)."""
        rows = self.sql(
            "SELECT run_id, state, run_type, start_date, end_date FROM dag_run WHERE dag_id = %s", (dag_id,)
        )
        keys = ("run_id", "state", "run_type", "start_date", "end_date")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def wait_for_runs(
        self,
        dag_id: str,
        expected: int,
        timeout: float = 1800,
        run_ids: Collection[str] | None = None,
        poll: float = 3,
    ) -> list[dict[str, Any]]:
        """Wait until ``dag_id`` has at least ``expected`` runs (of ``run_ids`` if given), all finished."""
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            self.services.check_alive()
            runs = [r for r in self.dag_runs(dag_id) if run_ids is None or r["run_id"] in run_ids]
            done = [r for r in runs if r["state"] in ("success", "failed")]
            status = f"{dag_id}: {len(done)}/{max(expected, len(runs))} runs finished"
            if status != last:
                log.info(status)
                last = status
            if len(runs) >= expected and len(done) == len(runs):
                return runs
            time.sleep(poll)
        raise TimeoutError(f"{dag_id}: runs not finished after {timeout}s ({last})")

    def task_instances(self, dag_id: str) -> list[dict[str, Any]]:
        """Task instances of ``dag_id`` (current tries) with the worker that ran them and when."""
        rows = self.sql(
            "SELECT task_id, run_id, map_index, state, try_number, hostname, start_date, end_date "
            "FROM task_instance WHERE dag_id = %s ORDER BY start_date NULLS LAST",
            (dag_id,),
        )
        keys = ("task_id", "run_id", "map_index", "state", "try_number", "hostname", "start_date", "end_date")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL a worker and every process under it (a lost host); returns the pids killed."""
        import psutil

        proc = self.services.procs.pop(name)
        self.killed.add(name)
        root = psutil.Process(proc.pid)
        victims = [root, *root.children(recursive=True)]
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        psutil.wait_procs(victims, timeout=30)
        return [p.pid for p in victims]


class S3Gate:
    """Fault injection on the stack's S3 endpoint: hold the next PUT of a key prefix for a while.

    ``hold("mlops-lake", "curated/flights/ds=2013-01-05/", 15)`` returns an event set when such a
    PUT arrives; the request then waits 15 s before S3 sees it, so a test can kill the writer in the
    middle of its write. Each hold applies to one request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: list[tuple[str, float, threading.Event]] = []

    def hold(self, bucket: str, key_prefix: str, seconds: float) -> threading.Event:
        arrived = threading.Event()
        with self._lock:
            self._holds.append((f"/{bucket}/{key_prefix.lstrip('/')}", seconds, arrived))
        return arrived

    def wrap(self, app: Any) -> Any:
        def gated(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("REQUEST_METHOD") == "PUT":
                path = unquote(environ.get("PATH_INFO", ""))
                with self._lock:
                    match = next((h for h in self._holds if path.startswith(h[0])), None)
                    if match:
                        self._holds.remove(match)
                if match:
                    match[2].set()
                    time.sleep(match[1])
            return app(environ, start_response)

        return gated


def _moto_server(gate: S3Gate) -> Any:
    """moto's ThreadedMotoServer on 127.0.0.1 (a free port), its WSGI app behind ``gate``."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class GatedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:  # as ThreadedMotoServer's, with the gate around the app
            app = gate.wrap(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    return GatedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


def worker_busy(tis: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How the task instances spread over workers: tasks and busy seconds each, and the seconds
    during which every worker was running at least one task (both busy)."""
    spans = [
        (str(t["hostname"]), t["start_date"].timestamp(), t["end_date"].timestamp())
        for t in tis
        if t.get("start_date") and t.get("end_date") and t.get("hostname")
    ]
    hosts = sorted({h for h, _, _ in spans})
    events = sorted([(a, 1, h) for h, a, _ in spans] + [(b, -1, h) for h, _, b in spans])
    running = dict.fromkeys(hosts, 0)
    all_busy = peak = 0.0
    last = events[0][0] if events else 0.0
    for when, delta, host in events:
        if hosts and all(running[h] > 0 for h in hosts):
            all_busy += when - last
        running[host] += delta
        peak = max(peak, sum(running.values()))
        last = when
    window = (max(b for _, _, b in spans) - min(a for _, a, _ in spans)) if spans else 0.0
    return {
        "tasks": {h: sum(1 for x, _, _ in spans if x == h) for h in hosts},
        "busy_seconds": {h: round(sum(b - a for x, a, b in spans if x == h), 1) for h in hosts},
        "all_workers_busy_seconds": round(all_busy, 1),
        "window_seconds": round(window, 1),
        "peak_parallel_tasks": int(peak),
    }


def _wait_http(url: str, timeout: float, what: str, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        time.sleep(1)
    raise TimeoutError(f"{what} not healthy at {url} after {timeout}s")


def _claim_redis_db(host: str, port: int, run_id: str) -> int:
    """An empty Redis database number, claimed for this run (the highest free one)."""
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis(host=host, port=port, db=db)
        if client.dbsize() == 0 and client.set(_REDIS_CLAIM_KEY, run_id, nx=True):
            return db
    raise RuntimeError(f"no empty Redis database on {host}:{port} (1-15 all hold keys)")


def _release_redis_db(host: str, port: int, db: int, run_id: str) -> None:
    import redis

    client = redis.Redis(host=host, port=port, db=db)
    if client.get(_REDIS_CLAIM_KEY) in (run_id.encode(), None):
        client.flushdb()


@contextlib.contextmanager
def local_stack(
    work_dir: Path,
    workers: int = 2,
    concurrency: int = 1,
    dags_folder: Path | None = None,
    postgres: tuple[str, int, str, str] = ("127.0.0.1", 5432, "postgres", ""),
    redis_server: tuple[str, int] = ("127.0.0.1", 6379),
    heartbeat_timeout: int = 60,
    schedule_end: str = "",
    wait_mlflow: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LocalStack]:
    """Provision and run the scale-out topology on loopback; tear everything down on exit.

    ``postgres`` is (host, port, user, password) of a server where the user may create databases.
    """
    from mlops.embedded import Services, free_port, write_local_settings

    pg_host, pg_port, pg_user, pg_password = postgres
    run_id = f"{RUN_PREFIX}{int(time.time())}_{secrets.token_hex(3)}"
    work_dir.mkdir(parents=True, exist_ok=True)
    s = Secrets.generate(postgres_password=pg_password)
    api_port = free_port()
    dbs = {"airflow": f"{run_id}_airflow", "mlflow": f"{run_id}_mlflow", "feast": f"{run_id}_feast"}
    server_url = f"postgresql://{pg_user}@{pg_host}:{pg_port}/postgres"
    if pg_password:
        server_url = f"postgresql://{pg_user}:{quote(pg_password, safe='')}@{pg_host}:{pg_port}/postgres"

    with contextlib.ExitStack() as stack:
        drop_stale_databases(server_url)
        create_databases(server_url, list(dbs.values()))
        stack.callback(drop_databases, server_url, list(dbs.values()))
        redis_db = _claim_redis_db(*redis_server, run_id)
        stack.callback(_release_redis_db, *redis_server, redis_db, run_id)

        gate = S3Gate()
        moto = _moto_server(gate)
        moto.start()
        stack.callback(moto.stop)
        s3_host, s3_port = moto.get_host_and_port()

        mlflow_port = free_port()
        e = Endpoints(
            postgres_host=pg_host,
            postgres_port=pg_port,
            postgres_user=pg_user,
            airflow_db=dbs["airflow"],
            mlflow_db=dbs["mlflow"],
            feast_db=dbs["feast"],
            redis_host=redis_server[0],
            redis_port=redis_server[1],
            redis_db=redis_db,
            s3_endpoint=f"http://{s3_host}:{s3_port}",
            mlflow_url=f"http://127.0.0.1:{mlflow_port}",
            api_internal_url=f"http://127.0.0.1:{api_port}",
            api_public_url=f"http://127.0.0.1:{api_port}",
            repo_root=str(REPO_ROOT),
            mlops_home=str(work_dir / "mlops"),
            passwords_file=str(work_dir / "airflow" / "passwords.json"),
            worker_concurrency=concurrency,
            heartbeat_timeout=heartbeat_timeout,
            schedule_end=schedule_end,
        )
        create_buckets(
            e.s3_endpoint,
            s.s3_access_key,
            s.s3_secret_key,
            [e.landing_bucket, e.lake_bucket, e.mlflow_bucket],
        )

        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_", "FEAST_", "AWS_"))
        }
        bin_dir = str(Path(sys.executable).parent)
        base["PATH"] = f"{bin_dir}{os.pathsep}{base.get('PATH', '')}"
        base["NO_PROXY"] = base["no_proxy"] = "*"

        mlflow_log = (work_dir / "mlflow.log").open("ab")
        stack.callback(mlflow_log.close)
        mlflow_proc = subprocess.Popen(
            [str(Path(bin_dir) / "mlflow"), *mlflow_server_args("127.0.0.1", mlflow_port, workers=1)],
            env={**base, **mlflow_server_environment(e, s)},
            stdout=mlflow_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=work_dir,
        )
        stack.callback(_stop_process, mlflow_proc)

        env = {
            **base,
            **environment(e, s),
            # Process-local settings (in compose: the image defaults and each container's own host).
            "AIRFLOW_HOME": str(work_dir / "airflow"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
            **(extra_env or {}),
        }
        if dags_folder is not None:
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        Path(e.mlops_home).mkdir(parents=True, exist_ok=True)

        admin_password = secrets.token_urlsafe(12)
        # What the compose init job does (check secrets, databases, UI login, migrate), plus the
        # airflow_local_settings.py that the image carries.
        t0 = time.monotonic()
        write_local_settings(Path(env["AIRFLOW_HOME"]))
        init(env, [dbs["mlflow"], dbs["feast"]], admin_password, quiet=True)
        log.info("init (airflow db migrate): %.0fs", time.monotonic() - t0)

        names = tuple(f"worker-{i + 1}" for i in range(workers))
        commands: dict[str, list[str]] = {"triggerer": ["triggerer", "--skip-serve-logs"]}
        component_env: dict[str, dict[str, str]] = {}
        for name in names:
            commands[name] = [
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                str(concurrency),
                "--skip-serve-logs",
                "--without-mingle",
                "--without-gossip",
            ]
            component_env[name] = {
                "MLOPS_WORKER_NAME": name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mlops.scaleout.worker_hostname",
            }
        services = Services(
            env=env, components=(*CONTROL_PLANE, *names), commands=commands, component_env=component_env
        )
        stack.callback(services.stop)
        t0 = time.monotonic()
        services.start()
        log.info("airflow components started, api-server healthy: %.0fs", time.monotonic() - t0)

        def mlflow_ready(timeout: float = 600) -> None:
            _wait_http(
                f"{e.mlflow_url}/health",
                timeout,
                "mlflow server",
                alive=lambda: _check(mlflow_proc, work_dir / "mlflow.log"),
            )

        # MLflow migrates its database at its first start (minutes on a busy machine), meanwhile
        # Airflow came up. ``wait_mlflow=False`` returns before, for callers that need it later.
        if wait_mlflow:
            mlflow_ready()
        log.info(
            "scale-out stack %s up: api %s, mlflow %s, s3 %s, redis db %d",
            run_id,
            e.api_public_url,
            e.mlflow_url,
            e.s3_endpoint,
            redis_db,
        )
        yield LocalStack(
            run_id=run_id,
            endpoints=e,
            secrets=s,
            env=env,
            services=services,
            workers=names,
            work_dir=work_dir,
            admin_password=admin_password,
            s3_gate=gate,
            mlflow_ready=mlflow_ready,
        )


def _check(proc: subprocess.Popen[bytes], logfile: Path) -> None:
    if proc.poll() is not None:
        tail = logfile.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"process exited with {proc.returncode}:\n{tail}")


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --------------------------------------------------------------------------------------------
# python -m mlops.scaleout init


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.scaleout", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="the compose init job: check secrets, create databases, login, migrate")
    p.add_argument("--database", action="append", default=[], help="a database to create (repeatable)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ns.command == "init":
        init(os.environ, ns.database, os.environ.get("AIRFLOW_ADMIN_PASSWORD", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
