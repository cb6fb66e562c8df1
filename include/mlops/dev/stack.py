"""The scale-out topology as processes on this machine, without Docker: the test stack of
``tests/integration/test_scaleout.py`` and ``benchmarks/scaleout_backfill.py``.

:func:`local_stack` runs what ``docker-compose.yaml`` runs, configured by the same variables
(:func:`mlops.scaleout.environment`, the profile's contract): a fresh PostgreSQL database each for
the Airflow metadata, the MLflow backend store, MLflow's users and the Feast registry, and the
read-only role; a private ``redis-server`` with a password (Celery broker and Feast online store);
moto's S3 server on loopback with IAM enforced for the landing zone, the lake and the MLflow
artifacts; the ``mlflow server`` behind its login; the Airflow api-server, scheduler,
dag-processor, triggerer and N ``airflow celery worker`` processes. It drops what it created on
exit, also after a failure. :class:`S3Gate` can hold one S3 write for a while, so a test can kill a
worker in the middle of it; :func:`worker_busy` says how task instances spread over the workers.
"""

from __future__ import annotations

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from mlops.config import REPO_ROOT
from mlops.scaleout import (
    CONTROL_PLANE,
    LAKE_BUCKET,
    RUN_PREFIX,
    Endpoints,
    Reader,
    Secrets,
    check_env,
    create_buckets,
    create_databases,
    dotenv_values,
    drop_databases,
    drop_roles,
    drop_stale_databases,
    environment,
    init,
    mlflow_server_command,
    mlflow_server_environment,
    serving_environment,
    serving_s3_policy,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

    from mlops.dev.embedded import Services

log = logging.getLogger(__name__)


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
    #: The prediction service's environment (:func:`serving_environment`, least privilege).
    serving_env: dict[str, str] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)

    @property
    def api_url(self) -> str:
        return self.endpoints.api_public_url

    def s3(self, serving: bool = False) -> Any:
        """A boto3 S3 client on the stack's endpoint: the platform's account, or the prediction
        service's (``serving``)."""
        import boto3

        s = self.secrets
        return boto3.client(
            "s3",
            endpoint_url=self.endpoints.s3_endpoint,
            aws_access_key_id=s.s3_serving_access_key if serving else s.s3_access_key,
            aws_secret_access_key=s.s3_serving_secret_key if serving else s.s3_secret_key,
            region_name=self.endpoints.s3_region,
        )

    def redis(self, password: str | None = None) -> Any:
        """A client of the stack's Redis (with its password unless ``password`` says otherwise)."""
        import redis

        e = self.endpoints
        pw = self.secrets.redis_password if password is None else password or None
        return redis.Redis(host=e.redis_host, port=e.redis_port, db=e.redis_db, password=pw)

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


def _s3_accounts(endpoint: str, lake_bucket: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The platform's and the prediction service's S3 accounts in moto's IAM, as MinIO's minio-init
    makes them (readwrite; :func:`serving_s3_policy`). Returns their (access key, secret key)."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    readwrite = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    keys = []
    for user, policy in (("mlops-platform", readwrite), ("mlops-serving", serving_s3_policy(lake_bucket))):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys.append((key["AccessKeyId"], key["SecretAccessKey"]))
    return keys[0], keys[1]


@contextlib.contextmanager
def _moto_iam_enforced() -> Iterator[None]:
    """Make moto (in this process) check every request's signature and IAM policy, as MinIO does."""
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    saved = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = 0, 0
    try:
        yield
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = saved


def redis_server(work_dir: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    """A private ``redis-server`` on 127.0.0.1:``port`` with ``requirepass`` (the compose redis
    service's settings; its configuration on stdin, so the password is on no command line)."""
    import shutil

    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    config = f'bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave ""\nappendonly no\ndir {work_dir}\n'
    out = (work_dir / "redis.log").open("ab")
    proc = subprocess.Popen(
        [exe, "-"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    assert proc.stdin is not None
    proc.stdin.write(config.encode())
    proc.stdin.close()
    return proc


def _wait_redis(
    port: int, password: str, proc: subprocess.Popen[bytes], logfile: Path, timeout: float = 30
) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check(proc, logfile)
        with contextlib.suppress(redis.ConnectionError):
            if redis.Redis(host="127.0.0.1", port=port, password=password).ping():
                return
        time.sleep(0.2)
    raise TimeoutError(f"redis-server on 127.0.0.1:{port} not answering after {timeout}s")


def _server_url(postgres: tuple[str, int, str, str], dbname: str = "postgres") -> str:
    """A SQLAlchemy URL of the server's ``dbname`` database, with the password if there is one."""
    host, port, user, password = postgres
    login = f"{user}:{quote(password, safe='')}" if password else user
    return f"postgresql://{login}@{host}:{port}/{dbname}"


def _create_databases(stack: contextlib.ExitStack, plan: _Plan) -> None:
    """The plan's databases, fresh (leftovers of stacks older than 12 h dropped first); they and the
    read-only role are dropped on exit."""
    server_url = _server_url(plan.postgres)
    drop_stale_databases(server_url)
    create_databases(server_url, list(plan.databases.values()))
    stack.callback(drop_roles, server_url, [plan.reader_role])
    stack.callback(drop_databases, server_url, list(plan.databases.values()))


def _start_redis(stack: contextlib.ExitStack, work_dir: Path, password: str) -> int:
    """A private ``redis-server`` with ``password`` on a free port (stopped on exit); its port."""
    from mlops.dev.embedded import free_port

    port = free_port()
    proc = redis_server(work_dir, port, password)
    stack.callback(_stop_process, proc)
    _wait_redis(port, password, proc, work_dir / "redis.log")
    return port


def _start_s3(stack: contextlib.ExitStack, keys: Secrets) -> tuple[S3Gate, str, Secrets]:
    """moto's S3 server behind an :class:`S3Gate`, with the platform's and the prediction service's
    accounts and IAM enforced from then on: (gate, endpoint, ``keys`` with their access keys)."""
    from dataclasses import replace

    gate = S3Gate()
    moto = _moto_server(gate)
    moto.start()
    stack.callback(moto.stop)
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    platform, serving = _s3_accounts(endpoint, LAKE_BUCKET)
    keys = replace(
        keys,
        s3_access_key=platform[0],
        s3_secret_key=platform[1],
        s3_serving_access_key=serving[0],
        s3_serving_secret_key=serving[1],
    )
    stack.enter_context(_moto_iam_enforced())
    return gate, endpoint, keys


def _base_environment() -> dict[str, str]:
    """This process's environment without the platform's variables, this interpreter first on PATH."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_", "FEAST_", "AWS_"))
    }
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    base["NO_PROXY"] = base["no_proxy"] = "*"
    return base


def _start_mlflow(
    stack: contextlib.ExitStack, work_dir: Path, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The ``mlflow server`` behind its login on 127.0.0.1:``port`` (stopped on exit)."""
    mlflow_log = (work_dir / "mlflow.log").open("ab")
    stack.callback(mlflow_log.close)
    mlflow_cmd = mlflow_server_command("127.0.0.1", port, workers=1)
    proc = subprocess.Popen(
        [sys.executable, *mlflow_cmd[1:], "--auth-config", str(work_dir / "mlflow_auth.ini")],
        env=env,
        stdout=mlflow_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=work_dir,
    )
    stack.callback(_stop_process, proc)
    return proc


@dataclass(frozen=True)
class _Plan:
    """What one stack is called and where it lives, before anything starts."""

    run_id: str
    work_dir: Path
    postgres: tuple[str, int, str, str]
    #: role -> database name: ``airflow``, ``mlflow``, ``mlflow_auth``, ``feast``.
    databases: dict[str, str]
    reader_role: str

    @classmethod
    def new(cls, work_dir: Path, postgres: tuple[str, int, str, str]) -> _Plan:
        run_id = f"{RUN_PREFIX}{int(time.time())}_{secrets.token_hex(3)}"
        names = ("airflow", "mlflow", "mlflow_auth", "feast")
        return cls(run_id, work_dir, postgres, {n: f"{run_id}_{n}" for n in names}, f"{run_id}_reader")


def _endpoints(plan: _Plan, ports: dict[str, int], s3_endpoint: str, **settings: Any) -> Endpoints:
    """The stack's :class:`Endpoints`: loopback ports, the plan's databases, ``settings`` (worker
    concurrency, heartbeat timeout, schedule end) as given."""
    host, port, user, _ = plan.postgres
    work_dir, dbs = plan.work_dir, plan.databases
    return Endpoints(
        postgres_host=host,
        postgres_port=port,
        postgres_user=user,
        airflow_db=dbs["airflow"],
        mlflow_db=dbs["mlflow"],
        feast_db=dbs["feast"],
        redis_host="127.0.0.1",
        redis_port=ports["redis"],
        redis_db=0,
        s3_endpoint=s3_endpoint,
        mlflow_url=f"http://127.0.0.1:{ports['mlflow']}",
        api_internal_url=f"http://127.0.0.1:{ports['api']}",
        api_public_url=f"http://127.0.0.1:{ports['api']}",
        repo_root=str(REPO_ROOT),
        mlops_home=str(work_dir / "mlops"),
        passwords_file=str(work_dir / "airflow" / "passwords.json"),
        postgres_reader_user=plan.reader_role,
        mlflow_auth_db=dbs["mlflow_auth"],
        **settings,
    )


#: moto's IAM check reads the Authorization header only and fails on presigned URLs (query
#: signatures), which MLflow 3 clients use to download artifacts straight from S3: here they stream
#: through the MLflow server instead (with its login). MinIO checks presigned URLs, so compose keeps
#: MLflow's default.
LOCAL_ONLY = {"MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}


def _airflow_environment(
    base: dict[str, str],
    e: Endpoints,
    keys: Secrets,
    plan: _Plan,
    api_port: int,
    dags_folder: Path | None,
    extra_env: Mapping[str, str],
) -> dict[str, str]:
    """Every Airflow process's environment: :func:`environment` plus the process-local settings
    (in compose: the image defaults and each container's own host), then ``extra_env``."""
    from mlops.dev.embedded import free_port

    env = {
        **base,
        **environment(e, keys),
        **LOCAL_ONLY,
        "AIRFLOW_HOME": str(plan.work_dir / "airflow"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
        **extra_env,
    }
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    return env


def _initialize(env: dict[str, str], e: Endpoints, keys: Secrets, plan: _Plan, admin_password: str) -> None:
    """What compose does before anything starts: config-check (the same rules on the same names;
    moto has no root account, and the local PostgreSQL trusts loopback, so its password may be
    empty), then the init job (check secrets, databases, the read-only role, UI login, migrate),
    plus the airflow_local_settings.py that the image carries."""
    from mlops.dev.embedded import write_local_settings

    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    Path(e.mlops_home).mkdir(parents=True, exist_ok=True)
    no_root = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
    skip = no_root if plan.postgres[3] else (*no_root, "POSTGRES_PASSWORD")
    check_env(dotenv_values(e, keys, admin_password), skip=skip)
    t0 = time.monotonic()
    write_local_settings(Path(env["AIRFLOW_HOME"]))
    dbs = plan.databases
    init(
        env,
        [dbs["mlflow"], dbs["mlflow_auth"], dbs["feast"]],
        admin_password,
        quiet=True,
        reader=Reader(role=plan.reader_role, password=keys.postgres_reader_password, database=dbs["feast"]),
    )
    log.info("init (airflow db migrate): %.0fs", time.monotonic() - t0)


def _celery_workers(workers: int, concurrency: int) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """The ``airflow celery worker`` commands (and the triggerer's) and each worker's own variables."""
    commands: dict[str, list[str]] = {"triggerer": ["triggerer", "--skip-serve-logs"]}
    component_env: dict[str, dict[str, str]] = {}
    for name in (f"worker-{i + 1}" for i in range(workers)):
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
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mlops.dev.stack.worker_hostname",
        }
    return commands, component_env


def _start_airflow(
    stack: contextlib.ExitStack, env: dict[str, str], workers: int, concurrency: int
) -> tuple[Services, tuple[str, ...]]:
    """The control plane and the Celery workers (stopped on exit); the workers' names."""
    from mlops.dev.embedded import Services

    commands, component_env = _celery_workers(workers, concurrency)
    names = tuple(name for name in commands if name.startswith("worker-"))
    services = Services(
        env=env, components=(*CONTROL_PLANE, *names), commands=commands, component_env=component_env
    )
    stack.callback(services.stop)
    t0 = time.monotonic()
    services.start()
    log.info("airflow components started, api-server healthy: %.0fs", time.monotonic() - t0)
    return services, names


@contextlib.contextmanager
def local_stack(
    work_dir: Path,
    workers: int = 2,
    concurrency: int = 1,
    dags_folder: Path | None = None,
    postgres: tuple[str, int, str, str] = ("127.0.0.1", 5432, "postgres", ""),
    heartbeat_timeout: int = 60,
    schedule_end: str = "",
    wait_mlflow: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LocalStack]:
    """Provision and run the scale-out topology on loopback; tear everything down on exit.

    ``postgres`` is (host, port, user, password) of a server where the user may create databases
    and roles. Redis is a private ``redis-server`` with a password on a free port (the shared one
    keeps no password); S3 is moto with IAM enforced (the platform's and the prediction service's
    accounts); the MLflow server runs behind its basic-auth login. The prediction service's
    least-privilege environment is :attr:`LocalStack.serving_env`.
    """
    from mlops.dev.embedded import free_port

    work_dir.mkdir(parents=True, exist_ok=True)
    plan = _Plan.new(work_dir, postgres)
    keys = Secrets.generate(postgres_password=postgres[3])
    ports = {"api": free_port()}
    with contextlib.ExitStack() as stack:
        _create_databases(stack, plan)
        ports["redis"] = _start_redis(stack, work_dir, keys.redis_password)
        gate, s3_endpoint, keys = _start_s3(stack, keys)
        ports["mlflow"] = free_port()
        e = _endpoints(
            plan,
            ports,
            s3_endpoint,
            worker_concurrency=concurrency,
            heartbeat_timeout=heartbeat_timeout,
            schedule_end=schedule_end,
        )
        create_buckets(
            s3_endpoint,
            keys.s3_access_key,
            keys.s3_secret_key,
            [e.landing_bucket, e.lake_bucket, e.mlflow_bucket],
        )
        base = _base_environment()
        mlflow_proc = _start_mlflow(
            stack, work_dir, ports["mlflow"], {**base, **mlflow_server_environment(e, keys)}
        )
        env = _airflow_environment(base, e, keys, plan, ports["api"], dags_folder, extra_env or {})
        admin_password = secrets.token_urlsafe(12)
        _initialize(env, e, keys, plan, admin_password)
        services, names = _start_airflow(stack, env, workers, concurrency)

        def mlflow_ready(timeout: float = 600) -> None:
            from mlops.dev.embedded import wait_http

            alive = lambda: _check(mlflow_proc, work_dir / "mlflow.log")  # noqa: E731
            wait_http(f"{e.mlflow_url}/health", timeout, "mlflow server", alive=alive)

        # MLflow migrates its database at its first start (minutes on a busy machine), meanwhile
        # Airflow came up. ``wait_mlflow=False`` returns before, for callers that need it later.
        if wait_mlflow:
            mlflow_ready()
        log.info(
            "scale-out stack %s up: api %s, mlflow %s, s3 %s, redis 127.0.0.1:%d",
            plan.run_id,
            e.api_public_url,
            e.mlflow_url,
            e.s3_endpoint,
            ports["redis"],
        )
        yield LocalStack(
            run_id=plan.run_id,
            endpoints=e,
            secrets=keys,
            env=env,
            services=services,
            workers=names,
            work_dir=work_dir,
            admin_password=admin_password,
            s3_gate=gate,
            mlflow_ready=mlflow_ready,
            serving_env={
                **base,
                **serving_environment(e, keys),
                **LOCAL_ONLY,
                "MLOPS_HOME": str(work_dir / "serving"),
            },
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
