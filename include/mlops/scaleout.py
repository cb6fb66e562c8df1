"""The scale-out profile's contract: its environment, its provisioning, its compose jobs.

:func:`environment` is the one place that says which variables every Airflow process of the
scale-out profile gets (:func:`mlops_environment` is its non-Airflow part), :func:`serving_environment`
what the prediction service gets, :func:`mlflow_server_environment` what the MLflow server gets.
``docker-compose.yaml`` mirrors them in ``x-airflow-env``, ``x-mlops-env``, ``x-serving-env`` and its
``mlflow`` service, and ``tests/integration/test_compose_config.py`` checks that mirror: it renders
``environment(compose_endpoints(.env.example), compose_secrets(.env.example))`` and compares it,
key by key, with what ``docker-compose config`` resolves.

Least privilege: the platform (Airflow, the MLflow server) and the prediction service hold separate
accounts. The service gets a read-only PostgreSQL role (SELECT on the Feast registry's tables only:
:func:`grant_reader`), an S3 account that reads the lake and writes only its prediction log
(:func:`serving_s3_policy`), and MLflow's read-only login. Redis has a password; the MLflow server
runs MLflow's basic-auth app (:func:`run_mlflow_server`); nothing starts while a value of ``.env`` is
still a placeholder (:func:`check_env`).

:mod:`mlops.dev.stack` runs the same topology on this machine without Docker (the test stack of
``tests/integration/test_scaleout.py``), from the same functions.

``python -m mlops.scaleout`` runs the compose jobs: ``check-env`` (refuses placeholders, naming each
variable), ``init`` (refuses placeholder secrets, creates the extra databases and the read-only
role, writes the UI login, migrates the Airflow metadata database) and ``mlflow-server``.

Importing this module is cheap (standard library only); it has no side effects.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from mlops.config import FEAST_PROJECT, QUIET_LOGGERS

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence


log = logging.getLogger(__name__)

#: Buckets of the scale-out profile (DESIGN.md: s3://mlops-landing, s3://mlops-lake).
LANDING_BUCKET = "mlops-landing"
LAKE_BUCKET = "mlops-lake"
MLFLOW_BUCKET = "mlops-mlflow"
#: Airflow components besides the workers (each its own process or container).
CONTROL_PLANE = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Prefix of everything the local stack creates (databases, roles), for finding leftovers.
RUN_PREFIX = "mlops_so_"
#: Values in .env.example that must never reach a running stack.
PLACEHOLDER_PREFIX = "change-me"
#: The MLflow server's variables that :func:`run_mlflow_server` reads (MLflow has none for them).
MLFLOW_AUTH_DB_ENV = "MLOPS_MLFLOW_AUTH_DB_URI"
MLFLOW_READER_USERNAME_ENV = "MLOPS_MLFLOW_READER_USERNAME"
MLFLOW_READER_PASSWORD_ENV = "MLOPS_MLFLOW_READER_PASSWORD"


@dataclass(frozen=True)
class Secrets:
    """Every credential of the stack. In compose they come from ``.env``; locally they are generated.

    The platform's (Airflow, the MLflow server) and the prediction service's are separate: the
    service gets a read-only PostgreSQL role, an S3 account that reads the lake and writes only its
    prediction log, and a read-only MLflow login (:func:`serving_environment`).
    """

    postgres_password: str
    s3_access_key: str
    s3_secret_key: str
    fernet_key: str
    jwt_secret: str
    api_secret_key: str
    #: The prediction service's read-only PostgreSQL role (SELECT on the Feast registry).
    postgres_reader_password: str
    #: Redis ``requirepass`` (Celery broker, Feast online store).
    redis_password: str
    #: The prediction service's S3 account (policy :func:`serving_s3_policy`).
    s3_serving_access_key: str
    s3_serving_secret_key: str
    #: MLflow's basic-auth logins: the platform's admin (workers), the service's reader.
    mlflow_admin_password: str
    mlflow_reader_password: str
    #: Signs the MLflow server's sessions and CSRF tokens (``MLFLOW_FLASK_SERVER_SECRET_KEY``).
    mlflow_secret_key: str

    @classmethod
    def generate(
        cls,
        postgres_password: str = "",
        s3_access_key: str = "",
        s3_secret_key: str = "",
        s3_serving_access_key: str = "",
        s3_serving_secret_key: str = "",
    ) -> Secrets:
        from cryptography.fernet import Fernet

        return cls(
            postgres_password=postgres_password,
            s3_access_key=s3_access_key or f"mlops{secrets.token_hex(4)}",
            s3_secret_key=s3_secret_key or secrets.token_urlsafe(24),
            fernet_key=Fernet.generate_key().decode(),
            jwt_secret=secrets.token_urlsafe(32),
            api_secret_key=secrets.token_urlsafe(32),
            postgres_reader_password=secrets.token_urlsafe(18),
            redis_password=secrets.token_urlsafe(18),
            s3_serving_access_key=s3_serving_access_key or f"serving{secrets.token_hex(4)}",
            s3_serving_secret_key=s3_serving_secret_key or secrets.token_urlsafe(24),
            mlflow_admin_password=secrets.token_urlsafe(18),
            mlflow_reader_password=secrets.token_urlsafe(18),
            mlflow_secret_key=secrets.token_urlsafe(32),
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
    #: ``MLOPS_REQUIRE_APPROVAL``: train_model waits for a human before @champion moves. On in
    #: compose (.env); off in the local test stack, whose runs nobody answers.
    require_approval: str = "false"
    #: The prediction service's read-only PostgreSQL role.
    postgres_reader_user: str = "mlops_reader"
    #: The database of MLflow's basic-auth users and permissions.
    mlflow_auth_db: str = "mlflow_auth"
    #: MLflow logins: the platform's admin (Airflow workers), the prediction service's reader.
    mlflow_admin_user: str = "mlops"
    mlflow_reader_user: str = "mlops-serving"


def postgres_url(
    e: Endpoints, s: Secrets, database: str, driver: str = "postgresql", reader: bool = False
) -> str:
    """The platform's URL of ``database`` (``reader``: the prediction service's read-only role)."""
    user, password = (
        (e.postgres_reader_user, s.postgres_reader_password)
        if reader
        else (e.postgres_user, s.postgres_password)
    )
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"{driver}://{auth}@{e.postgres_host}:{e.postgres_port}/{database}"


def redis_url(e: Endpoints, s: Secrets) -> str:
    """The Celery broker: Redis with its ``requirepass`` password."""
    return f"redis://:{quote(s.redis_password, safe='')}@{e.redis_host}:{e.redis_port}/{e.redis_db}"


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


def serving_s3_policy(lake_bucket: str = LAKE_BUCKET) -> dict[str, Any]:
    """The prediction service's S3 policy: read the lake, write only its prediction log.

    The service reads nothing else on S3 and writes ``{lake}/predictions_online/``
    (:mod:`mlops.serving.logger`); it cannot change the curated lake, the features, the landing zone
    or the MLflow artifacts. minio-init creates it in MinIO (``mlops-serving``), the local stack in
    moto's IAM.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{lake_bucket}"],
            },
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{lake_bucket}/*"]},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{lake_bucket}/predictions_online/*"],
            },
        ],
    }


def _common_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """What the platform and the prediction service share (no credential but Redis's password)."""
    redis_db = e.redis_db if e.feast_redis_db is None else e.feast_redis_db
    online = {
        "type": "redis",
        "connection_string": f"{e.redis_host}:{e.redis_port},db={redis_db},password={s.redis_password}",
    }
    return {
        # The contract of DESIGN.md (Configuration).
        "MLOPS_HOME": e.mlops_home,
        "MLOPS_LANDING_URI": f"s3://{e.landing_bucket}",
        "MLOPS_LAKE_URI": f"s3://{e.lake_bucket}",
        "MLFLOW_TRACKING_URI": e.mlflow_url,
        # The standard AWS variables' endpoint, for readers that do not go through Airflow (Feast's
        # offline store reads s3:// with pyarrow; mlops.lake's default client).
        "AWS_ENDPOINT_URL": e.s3_endpoint,
        "AWS_DEFAULT_REGION": e.s3_region,
        # Feast (feature_repo/feature_store.yaml): the SQL registry on PostgreSQL (per account, below),
        # the Redis online store.
        "MLOPS_FEAST_PROJECT": FEAST_PROJECT,
        "MLOPS_FEAST_ONLINE_STORE": json.dumps(online),
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


def feast_registry(e: Endpoints, s: Secrets, reader: bool = False) -> str:
    """``MLOPS_FEAST_REGISTRY``: the SQL registry (``reader``: the read-only role, tables verified
    rather than created)."""
    registry: dict[str, Any] = {
        "registry_type": "sql",
        "path": postgres_url(e, s, e.feast_db, driver="postgresql+psycopg", reader=reader),
        "cache_ttl_seconds": 60,
    }
    if reader:
        registry["schema_mode"] = "verify"
    return json.dumps(registry)


def mlops_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The platform's ``mlops`` variables (no Airflow): every Airflow process gets them (compose:
    x-mlops-env), with the platform's credentials."""
    return {
        **_common_environment(e, s),
        "AWS_ACCESS_KEY_ID": s.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3_secret_key,
        "MLOPS_FEAST_REGISTRY": feast_registry(e, s),
        # The MLflow server's login (basic-auth app): the platform's admin account.
        "MLFLOW_TRACKING_USERNAME": e.mlflow_admin_user,
        "MLFLOW_TRACKING_PASSWORD": s.mlflow_admin_password,
    }


def serving_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The prediction service's variables (compose: x-serving-env): least privilege.

    A read-only PostgreSQL role for the Feast registry, an S3 account that reads the lake and
    writes only ``predictions_online/`` (:func:`serving_s3_policy`), MLflow's reader login. None of
    the platform's credentials.
    """
    return {
        **_common_environment(e, s),
        "AWS_ACCESS_KEY_ID": s.s3_serving_access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3_serving_secret_key,
        "MLOPS_FEAST_REGISTRY": feast_registry(e, s, reader=True),
        "MLFLOW_TRACKING_USERNAME": e.mlflow_reader_user,
        "MLFLOW_TRACKING_PASSWORD": s.mlflow_reader_password,
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
        "AIRFLOW__CELERY__BROKER_URL": redis_url(e, s),
        "AIRFLOW__CELERY__RESULT_BACKEND": postgres_url(e, s, e.airflow_db, "db+postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(e.worker_concurrency),
        # A worker's concurrent XGBoost fits wait passively for their threads (mlops.config.airflow_env).
        "OMP_WAIT_POLICY": "PASSIVE",
        # The promotion lock and the retrain guard's lock (mlops.models.registry.promotion_lock): PostgreSQL
        # advisory locks in one database every worker shares (a file lock serializes one host only).
        "MLOPS_LOCK_URL": postgres_url(e, s, e.airflow_db),
        # train_model's approval step by default (mlops.training.params.REQUIRE_APPROVAL_ENV).
        "MLOPS_REQUIRE_APPROVAL": e.require_approval,
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


def feast_environment(e: Endpoints, s: Secrets, reader: bool = False) -> dict[str, str]:
    """The variables ``feature_repo/feature_store.yaml`` reads (see :mod:`mlops.features.feature_store`)."""
    common = _common_environment(e, s)
    return {
        "MLOPS_FEAST_PROJECT": common["MLOPS_FEAST_PROJECT"],
        "MLOPS_FEAST_REGISTRY": feast_registry(e, s, reader=reader),
        "MLOPS_FEAST_ONLINE_STORE": common["MLOPS_FEAST_ONLINE_STORE"],
    }


def mlflow_server_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """The MLflow tracking server's variables: PostgreSQL backend store, artifacts proxied to S3,
    the basic-auth app's user store, its two logins and its session key.

    The store URIs go in the environment (``mlflow server`` reads them there), not on the command line
    where ``ps`` would show the database password. :func:`run_mlflow_server` writes the auth
    configuration file (MLflow reads its database URI only from a file) and creates the logins.
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
        # The basic-auth app (mlflow server --app-name basic-auth): no request without a login.
        MLFLOW_AUTH_DB_ENV: postgres_url(e, s, e.mlflow_auth_db),
        "MLFLOW_AUTH_ADMIN_USERNAME": e.mlflow_admin_user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": s.mlflow_admin_password,
        MLFLOW_READER_USERNAME_ENV: e.mlflow_reader_user,
        MLFLOW_READER_PASSWORD_ENV: s.mlflow_reader_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": s.mlflow_secret_key,
    }


def mlflow_server_args(host: str, port: int, workers: int) -> list[str]:
    """``mlflow server`` arguments (the stores come from :func:`mlflow_server_environment`)."""
    return [
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def mlflow_server_command(host: str, port: int, workers: int) -> list[str]:
    """What runs the MLflow server (compose: the mlflow service's command): :func:`run_mlflow_server`."""
    args = ["python", "-m", "mlops.scaleout", "mlflow-server"]
    return [*args, "--host", host, "--port", str(port), "--workers", str(workers)]


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
        require_approval=values.get("MLOPS_REQUIRE_APPROVAL") or "true",
        postgres_reader_user=values["POSTGRES_READER_USER"],
        mlflow_auth_db="mlflow_auth",
        mlflow_admin_user=values["MLFLOW_ADMIN_USER"],
        mlflow_reader_user=values["MLFLOW_READER_USER"],
    )


def compose_secrets(values: Mapping[str, str]) -> Secrets:
    return Secrets(
        postgres_password=values["POSTGRES_PASSWORD"],
        s3_access_key=values["MLOPS_S3_ACCESS_KEY"],
        s3_secret_key=values["MLOPS_S3_SECRET_KEY"],
        fernet_key=values["AIRFLOW_FERNET_KEY"],
        jwt_secret=values["AIRFLOW_JWT_SECRET"],
        api_secret_key=values["AIRFLOW_API_SECRET_KEY"],
        postgres_reader_password=values["POSTGRES_READER_PASSWORD"],
        redis_password=values["REDIS_PASSWORD"],
        s3_serving_access_key=values["MLOPS_S3_SERVING_ACCESS_KEY"],
        s3_serving_secret_key=values["MLOPS_S3_SERVING_SECRET_KEY"],
        mlflow_admin_password=values["MLFLOW_ADMIN_PASSWORD"],
        mlflow_reader_password=values["MLFLOW_READER_PASSWORD"],
        mlflow_secret_key=values["MLFLOW_SECRET_KEY"],
    )


def dotenv_values(e: Endpoints, s: Secrets, admin_password: str = "") -> dict[str, str]:
    """The ``.env`` values that describe a stack's accounts (the inverse of :func:`compose_secrets`),
    so the local stack passes the same :func:`check_env` as ``docker-compose up``."""
    return {
        "POSTGRES_USER": e.postgres_user,
        "POSTGRES_PASSWORD": s.postgres_password,
        "POSTGRES_READER_USER": e.postgres_reader_user,
        "POSTGRES_READER_PASSWORD": s.postgres_reader_password,
        "REDIS_PASSWORD": s.redis_password,
        "MLOPS_S3_ACCESS_KEY": s.s3_access_key,
        "MLOPS_S3_SECRET_KEY": s.s3_secret_key,
        "MLOPS_S3_SERVING_ACCESS_KEY": s.s3_serving_access_key,
        "MLOPS_S3_SERVING_SECRET_KEY": s.s3_serving_secret_key,
        "AIRFLOW_FERNET_KEY": s.fernet_key,
        "AIRFLOW_JWT_SECRET": s.jwt_secret,
        "AIRFLOW_API_SECRET_KEY": s.api_secret_key,
        "AIRFLOW_ADMIN_PASSWORD": admin_password,
        "MLFLOW_ADMIN_USER": e.mlflow_admin_user,
        "MLFLOW_ADMIN_PASSWORD": s.mlflow_admin_password,
        "MLFLOW_READER_USER": e.mlflow_reader_user,
        "MLFLOW_READER_PASSWORD": s.mlflow_reader_password,
        "MLFLOW_SECRET_KEY": s.mlflow_secret_key,
    }


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


#: The REQUIRED values of ``.env`` (.env.example marks them so): name -> (minimum length, whether
#: the value goes inside a connection URL that docker-compose builds without quoting).
REQUIRED_VARIABLES: dict[str, tuple[int, bool]] = {
    "POSTGRES_PASSWORD": (12, True),
    "POSTGRES_READER_PASSWORD": (12, True),
    "REDIS_PASSWORD": (12, True),
    "MINIO_ROOT_USER": (3, False),
    "MINIO_ROOT_PASSWORD": (8, False),
    "MLOPS_S3_ACCESS_KEY": (3, False),
    "MLOPS_S3_SECRET_KEY": (8, False),
    "MLOPS_S3_SERVING_SECRET_KEY": (8, False),
    "AIRFLOW_FERNET_KEY": (44, False),
    "AIRFLOW_JWT_SECRET": (16, False),
    "AIRFLOW_API_SECRET_KEY": (16, False),
    "AIRFLOW_ADMIN_PASSWORD": (8, False),
    "MLFLOW_ADMIN_PASSWORD": (12, False),
    "MLFLOW_READER_PASSWORD": (12, False),
    "MLFLOW_SECRET_KEY": (16, False),
}
#: Account names of .env: the platform's and the prediction service's must differ (a shared name
#: would hand the service the platform's rights, or strip the platform of them).
ACCOUNT_VARIABLES: dict[str, bool] = {
    "POSTGRES_USER": True,
    "POSTGRES_READER_USER": True,
    "MLOPS_S3_SERVING_ACCESS_KEY": False,
    "MLFLOW_ADMIN_USER": False,
    "MLFLOW_READER_USER": False,
}
_DISTINCT = (
    ("POSTGRES_READER_USER", "POSTGRES_USER"),
    ("MLFLOW_READER_USER", "MLFLOW_ADMIN_USER"),
    ("MLOPS_S3_SERVING_ACCESS_KEY", "MLOPS_S3_ACCESS_KEY"),
    ("MLOPS_S3_SERVING_ACCESS_KEY", "MINIO_ROOT_USER"),
    ("MLOPS_S3_ACCESS_KEY", "MINIO_ROOT_USER"),
)
#: Characters a value may hold when it goes inside a URL unquoted (RFC 3986 unreserved).
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def env_problems(values: Mapping[str, str], skip: Collection[str] = ()) -> list[str]:
    """What is wrong with the ``.env`` ``values`` (empty: ready). Never quotes a secret's value."""
    problems = []
    for name, (minimum, in_url) in {
        **REQUIRED_VARIABLES,
        **{k: (1, u) for k, u in ACCOUNT_VARIABLES.items()},
    }.items():
        if name in skip:
            continue
        value = values.get(name) or ""
        if not value:
            problems.append(f"{name} is unset")
        elif value.startswith(PLACEHOLDER_PREFIX):
            problems.append(f"{name} still holds the .env.example placeholder")
        elif len(value) < minimum:
            problems.append(f"{name} is shorter than {minimum} characters")
        elif in_url and not set(value) <= _URL_SAFE:
            problems.append(
                f"{name} holds characters other than letters, digits and - . _ ~ (it goes in URLs)"
            )
    for a, b in _DISTINCT:
        if values.get(a) and values.get(a) == values.get(b):
            problems.append(f"{a} is the same account as {b}: give the prediction service its own")
    fernet = values.get("AIRFLOW_FERNET_KEY") or ""
    if "AIRFLOW_FERNET_KEY" not in skip and fernet and not fernet.startswith(PLACEHOLDER_PREFIX):
        from cryptography.fernet import Fernet

        try:
            Fernet(fernet.encode())
        except ValueError:
            problems.append("AIRFLOW_FERNET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)")
    return problems


def check_env(values: Mapping[str, str], skip: Collection[str] = ()) -> None:
    """Refuse to start while a value of ``.env`` is unset, a placeholder or unfit (compose: the
    config-check service every other one waits for; the local stack runs it on its own values)."""
    problems = env_problems(values, skip)
    if problems:
        raise SystemExit(
            "Refusing to start, .env is not ready:\n"
            + "".join(f"  - {p}\n" for p in problems)
            + "Set each in .env (.env.example says how to generate a value), then rerun `docker-compose up`."
        )


def _admin_connect(sqlalchemy_url: str, dbname: str = "postgres") -> Any:
    """A psycopg2 connection (autocommit) to ``dbname`` on the server in the URL, as its user."""
    import psycopg2

    u = urlparse(sqlalchemy_url)
    conn = psycopg2.connect(
        host=u.hostname,
        port=u.port or 5432,
        user=unquote(u.username or "postgres"),
        password=unquote(u.password) if u.password else None,
        dbname=dbname,
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
    """Drop the databases (and read-only roles) of local stacks that never cleaned up (their
    process was killed)."""
    import re

    conn = _admin_connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (RUN_PREFIX + "%",))
            names = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (RUN_PREFIX + "%",))
            roles = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    cutoff = time.time() - older_than_hours * 3600
    # Names are RUN_PREFIX + unix time + "_" + random hex + "_" + what (see mlops.dev.stack.local_stack).
    pattern = re.compile(rf"{RUN_PREFIX}(\d{{10}})_[0-9a-f]{{6}}_(airflow|mlflow|mlflow_auth|feast|reader)$")

    def stale(found: list[str]) -> list[str]:
        return [n for n in found if (m := pattern.match(n)) and 1_600_000_000 < int(m.group(1)) < cutoff]

    dbs, old_roles = stale(names), stale(roles)
    if dbs or old_roles:
        log.warning("dropping databases and roles left by killed scale-out runs: %s", dbs + old_roles)
        drop_databases(server_url, dbs)
        drop_roles(server_url, old_roles)
    return dbs + old_roles


def grant_reader(
    server_url: str,
    role: str,
    password: str,
    database: str,
    owner: str,
    private: Sequence[str] = (),
) -> None:
    """The prediction service's read-only role: it reads the tables of ``database`` (the Feast
    registry), including those ``owner`` creates later (``feast apply``), and nothing else.

    Idempotent (the password follows ``.env``). The role logs in, is no superuser and cannot create
    databases or roles; its transactions are read-only by default; PUBLIC loses CONNECT and TEMP on
    ``database`` and on the ``private`` databases (so the role cannot even connect to them) and
    CREATE on ``database``'s public schema.
    """
    if role == owner:
        raise ValueError(f"the read-only role {role!r} must not be the platform's role {owner!r}")
    conn = _admin_connect(server_url)
    try:
        with conn.cursor() as cur:
            _reader_role(cur, role, password, database, private)
    finally:
        conn.close()
    conn = _admin_connect(server_url, database)
    try:
        with conn.cursor() as cur:
            _reader_grants(cur, role, owner)
    finally:
        conn.close()


def _reader_role(cur: Any, role: str, password: str, database: str, private: Sequence[str]) -> None:
    """The role itself (created or its password updated), read-only by default, allowed to connect
    to ``database`` only: PUBLIC's rights on it and on the ``private`` databases revoked."""
    from psycopg2 import sql

    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    verb = sql.SQL("ALTER" if cur.fetchone() else "CREATE")
    cur.execute(
        sql.SQL(
            "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %s"
        ).format(verb, sql.Identifier(role)),
        (password or None,),
    )
    cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(role)))
    for name in (database, *private):
        cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    cur.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(role))
    )


def _reader_grants(cur: Any, role: str, owner: str) -> None:
    """In the registry's database: SELECT on the public schema's tables, today's and those that
    ``owner`` creates later; nobody but the owner creates tables there."""
    from psycopg2 import sql

    reader, platform = sql.Identifier(role), sql.Identifier(owner)
    cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))
    cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(reader))
    cur.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(
            platform, reader
        )
    )


def drop_roles(server_url: str, roles: Sequence[str]) -> None:
    """Drop roles (after the databases they had rights in are gone)."""
    from psycopg2 import sql

    conn = _admin_connect(server_url)
    try:
        with conn.cursor() as cur:
            for role in roles:
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    finally:
        conn.close()


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


@dataclass(frozen=True)
class Reader:
    """The prediction service's read-only PostgreSQL role and the database it reads."""

    role: str
    password: str
    database: str


def init(
    env: Mapping[str, str],
    databases: Sequence[str],
    admin_password: str,
    quiet: bool = False,
    reader: Reader | None = None,
) -> None:
    """The compose init job: check secrets, create databases and the read-only role, write the UI
    login, migrate Airflow.

    ``quiet`` keeps ``airflow db migrate``'s output unless it fails.
    """
    check_secrets(env)
    if not admin_password or admin_password.startswith(PLACEHOLDER_PREFIX):
        raise SystemExit("Refusing to start: set AIRFLOW_ADMIN_PASSWORD in .env (the Airflow UI login).")
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    created = create_databases(conn, databases)
    log.info("databases created: %s", created or "none (all existed)")
    if reader is not None:
        u = urlparse(conn)
        owner, airflow_db = unquote(u.username or "postgres"), u.path.lstrip("/")
        private = [d for d in dict.fromkeys((airflow_db, *databases)) if d != reader.database]
        grant_reader(conn, reader.role, reader.password, reader.database, owner, private)
        log.info("read-only role %s: SELECT on the tables of %s only", reader.role, reader.database)
    user = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")[0].split(":")[0]
    write_passwords_file(
        Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]), {user: admin_password}
    )
    proc = subprocess.run(
        [_executable("airflow"), "db", "migrate"], env=dict(env), capture_output=quiet, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`airflow db migrate` failed ({proc.returncode}):\n{(proc.stderr or '')[-3000:]}")


def _executable(name: str) -> str:
    """``name`` beside this interpreter (a virtualenv), else the one on PATH (the Airflow image)."""
    import shutil

    sibling = Path(sys.executable).parent / name
    return str(sibling) if sibling.exists() else shutil.which(name) or name


# --------------------------------------------------------------------------------------------
# The MLflow server behind a login (compose: the mlflow service; the local stack runs the same).

#: The MLflow server's variables :func:`run_mlflow_server` needs (see :func:`mlflow_server_environment`).
MLFLOW_SERVER_VARIABLES = (
    "MLFLOW_BACKEND_STORE_URI",
    MLFLOW_AUTH_DB_ENV,
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    MLFLOW_READER_USERNAME_ENV,
    MLFLOW_READER_PASSWORD_ENV,
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


def write_mlflow_auth_config(path: Path, database_uri: str, admin_user: str) -> Path:
    """MLflow's basic-auth configuration (``MLFLOW_AUTH_CONFIG_PATH``), readable by its owner only.

    Every request needs a login; a user without an explicit grant may read (``default_permission``
    READ: the prediction service's reader), the admin may do everything. MLflow reads the user
    store's URI only from this file, so it is written at start from the environment, never baked.
    """
    import configparser
    import io

    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": "READ",
        # configparser interpolates %: a percent-encoded password must be escaped.
        "database_uri": database_uri.replace("%", "%%"),
        "admin_username": admin_user,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
    }
    buf = io.StringIO()
    config.write(buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(buf.getvalue())
    return path


def sync_mlflow_users(database_uri: str, users: Mapping[str, tuple[str, bool]]) -> None:
    """Create or update MLflow's basic-auth users (``{name: (password, is_admin)}``): ``.env`` is
    the source of truth, so a changed password takes effect at the next start.

    Import after ``MLFLOW_AUTH_CONFIG_PATH`` is set: MLflow's auth package reads it at import.
    """
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)  # creates or migrates the user store
    try:
        for name, (password, is_admin) in users.items():
            if store.has_user(name, use_primary=True):
                store.update_user(name, password=password, is_admin=is_admin)
            else:
                store.create_user(name, password, is_admin=is_admin)
    finally:
        store.engine.dispose()


def run_mlflow_server(host: str, port: int, workers: int, auth_config: Path | None = None) -> None:
    """Write the auth configuration, create the two logins, then exec ``mlflow server --app-name
    basic-auth`` (this process becomes the server)."""
    import tempfile

    env = os.environ
    missing = [name for name in MLFLOW_SERVER_VARIABLES if not env.get(name)]
    if missing:
        raise SystemExit(
            f"Refusing to start the MLflow server: {', '.join(missing)} unset (see .env.example)"
        )
    admin, reader = env["MLFLOW_AUTH_ADMIN_USERNAME"], env[MLFLOW_READER_USERNAME_ENV]
    if admin == reader:
        raise SystemExit("Refusing to start: MLFLOW_READER_USER must differ from MLFLOW_ADMIN_USER")
    path = auth_config or Path(tempfile.mkdtemp(prefix="mlflow-auth-")) / "basic_auth.ini"
    write_mlflow_auth_config(path, env[MLFLOW_AUTH_DB_ENV], admin)
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    sync_mlflow_users(
        env[MLFLOW_AUTH_DB_ENV],
        {admin: (env["MLFLOW_AUTH_ADMIN_PASSWORD"], True), reader: (env[MLFLOW_READER_PASSWORD_ENV], False)},
    )
    log.info(
        "MLflow basic-auth: users %s (admin) and %s (read-only) ready; starting the server", admin, reader
    )
    exe = _executable("mlflow")
    os.execv(exe, [exe, *mlflow_server_args(host, port, workers)])


# --------------------------------------------------------------------------------------------
# python -m mlops.scaleout init


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.scaleout", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "check-env",
        help="refuse to start while a REQUIRED value of .env is unset or the .env.example placeholder",
    )
    p = sub.add_parser(
        "init",
        help="the compose init job: check secrets, create databases and the read-only role, login, migrate",
    )
    p.add_argument("--database", action="append", default=[], help="a database to create (repeatable)")
    p.add_argument(
        "--reader-database",
        help="the database the read-only role POSTGRES_READER_USER (password POSTGRES_READER_PASSWORD) may read",
    )
    m = sub.add_parser(
        "mlflow-server", help="the MLflow server behind its basic-auth login (compose: mlflow)"
    )
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=5000)
    m.add_argument("--workers", type=int, default=1)
    m.add_argument(
        "--auth-config", type=Path, help="where to write the auth configuration (default: a temp dir)"
    )
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ns.command == "check-env":
        check_env(os.environ)
        log.info(".env: every REQUIRED value is set (no placeholder left)")
    elif ns.command == "init":
        reader = None
        if ns.reader_database:
            role, password = (
                os.environ.get("POSTGRES_READER_USER"),
                os.environ.get("POSTGRES_READER_PASSWORD"),
            )
            if not role or not password or password.startswith(PLACEHOLDER_PREFIX):
                raise SystemExit(
                    "Refusing to start: set POSTGRES_READER_USER and POSTGRES_READER_PASSWORD in .env "
                    "(the prediction service's read-only PostgreSQL role)."
                )
            reader = Reader(role=role, password=password, database=ns.reader_database)
        init(os.environ, ns.database, os.environ.get("AIRFLOW_ADMIN_PASSWORD", ""), reader=reader)
    elif ns.command == "mlflow-server":
        run_mlflow_server(ns.host, ns.port, ns.workers, ns.auth_config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
