"""docker-compose.yaml validates statically and keeps the scale-out contract.

There is no Docker engine on the development machines, so this is what can be checked without one:
``docker-compose config`` (Debian's docker-compose, installed by ``make deps-apt``) resolves the file
with the values of ``.env.example``; the resolved file has every service, health checks and a start
order; its variables mirror :func:`mlops.scaleout.environment` (what the no-Docker integration test
runs); and nothing secret is written in the compose file, the Dockerfile or ``.env.example``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from mlops import config, scaleout
from tests.conftest import IN_CI, REPO

COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

SERVICES = {
    "config-check",
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "prediction-service",
    "statsd-exporter",
    "prometheus",
    "grafana",
}
#: Airflow variables of the compose file only: the metrics go to its statsd-exporter, and the
#: rollout guard reads its prediction service, neither of which the no-Docker stack
#: (mlops.scaleout.environment) runs.
COMPOSE_ONLY_AIRFLOW = {
    "MLOPS_SERVING_METRICS_URL",
    "AIRFLOW__METRICS__STATSD_ON",
    "AIRFLOW__METRICS__STATSD_HOST",
    "AIRFLOW__METRICS__STATSD_PORT",
    "AIRFLOW__METRICS__STATSD_PREFIX",
}
ONE_SHOT = {"config-check", "minio-init", "airflow-init"}
AIRFLOW_LONG_RUNNING = {
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
#: Names of variables that hold a credential.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY|_KEY$|ROOT_USER", re.I)
#: Variables only the init job gets (besides the Airflow environment).
INIT_ONLY = {"AIRFLOW_ADMIN_PASSWORD", "POSTGRES_READER_USER", "POSTGRES_READER_PASSWORD"}
#: The .env values the prediction service may see: its own accounts, and Redis's password.
SERVING_SECRETS = {
    "POSTGRES_READER_USER",
    "POSTGRES_READER_PASSWORD",
    "MLOPS_S3_SERVING_ACCESS_KEY",
    "MLOPS_S3_SERVING_SECRET_KEY",
    "MLFLOW_READER_USER",
    "MLFLOW_READER_PASSWORD",
    "REDIS_PASSWORD",
}
#: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def parse_env_file(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def raw() -> dict:
    """The compose file as written (anchors and merge keys resolved by YAML, variables not)."""
    return yaml.safe_load(COMPOSE.read_text())


def compose_binary() -> str:
    exe = shutil.which("docker-compose")
    if exe:
        return exe
    msg = "docker-compose (Debian package docker-compose) is not installed; run `make deps-apt`"
    if IN_CI:
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


def render(env_file_text: str, tmp_path) -> dict:
    """``docker-compose config`` with only ``env_file_text`` as variables (not the caller's shell)."""
    env_file = tmp_path / "compose.env"
    env_file.write_text(env_file_text)
    proc = subprocess.run(
        [compose_binary(), "--project-directory", str(REPO), "--env-file", str(env_file)]
        + ["-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, f"docker-compose config warned:\n{proc.stderr}"
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    return render(ENV_EXAMPLE.read_text(), tmp_path_factory.mktemp("compose"))


# ------------------------------------------------------------------------------ docker-compose config


def test_config_resolves_with_env_example(rendered):
    assert set(rendered["services"]) == SERVICES


def test_config_refuses_to_start_without_secrets(env_example, tmp_path):
    """A missing secret stops `docker-compose config`/`up` with a message naming it."""
    partial = "\n".join(f"{k}={v}" for k, v in env_example.items() if k != "AIRFLOW_FERNET_KEY")
    env_file = tmp_path / "partial.env"
    env_file.write_text(partial)
    proc = subprocess.run(
        [compose_binary(), "--project-directory", str(REPO), "--env-file", str(env_file)]
        + ["-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "AIRFLOW_FERNET_KEY" in proc.stderr


def test_every_long_running_service_has_a_healthcheck(rendered):
    for name, svc in rendered["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name}: a one-shot job must not restart"
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"


def test_start_order(rendered):
    svcs = rendered["services"]

    def cond(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in svcs[name].get("depends_on", {}).items()}

    for name in AIRFLOW_LONG_RUNNING:
        deps = cond(name)
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        assert deps.get("airflow-init") == "service_completed_successfully", name
        assert deps.get("minio-init") == "service_completed_successfully", name
        if name != "airflow-api-server":
            # Tasks and the scheduler talk to the Execution API: it must answer first.
            assert deps.get("airflow-api-server") == "service_healthy", name
    assert cond("airflow-worker").get("mlflow") == "service_healthy"
    for name in ("postgres", "redis", "minio"):
        assert cond(name) == {"config-check": "service_completed_successfully"}, name
    assert cond("config-check") == {}
    assert cond("airflow-init") == {"postgres": "service_healthy"}
    assert cond("minio-init") == {"minio": "service_healthy"}
    assert cond("mlflow") == {
        "postgres": "service_healthy",
        "minio-init": "service_completed_successfully",
        "airflow-init": "service_completed_successfully",  # creates the mlflow database
    }
    assert cond("prediction-service") == {"redis": "service_healthy", "mlflow": "service_healthy"}
    # Every dependency waits for a condition, and the graph has no cycle.
    order: list[str] = []
    pending = dict.fromkeys(svcs)
    while pending:
        ready = [n for n in pending if set(cond(n)) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        for n in ready:
            order.append(n)
            del pending[n]
    # Nothing starts before the .env check passed: every service waits for it, directly or not.
    for name in set(svcs) - {"config-check"}:
        seen, todo = set(), [name]
        while todo:
            for dep in cond(todo.pop()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        assert "config-check" in seen, f"{name} can start before config-check"


def test_workers_scale_out(rendered):
    worker = rendered["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker, "a fixed name or port blocks --scale"
    assert worker.get("scale", 1) >= 2
    assert worker["command"] == ["celery", "worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_published_ports_bind_loopback_only(rendered):
    for name, svc in rendered["services"].items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} beyond loopback"
    assert "ports" not in rendered["services"]["postgres"]
    assert "ports" not in rendered["services"]["redis"]


def _assert_mirrors(actual: dict[str, str], expected: dict[str, str], where: str) -> None:
    for key, value in expected.items():
        assert key in actual, f"{where}: {key} missing (mlops.scaleout sets it)"
        got = str(actual[key])
        if value.startswith("{"):
            assert json.loads(got) == json.loads(value), f"{where}: {key} differs"
        else:
            assert got == value, f"{where}: {key}={got!r}, mlops.scaleout says {value!r}"


def test_airflow_env_mirrors_scaleout_environment(rendered, env_example):
    e, s = scaleout.compose_endpoints(env_example), scaleout.compose_secrets(env_example)
    expected = scaleout.environment(e, s)
    for name in AIRFLOW_LONG_RUNNING | {"airflow-init"}:
        actual = rendered["services"][name]["environment"]
        _assert_mirrors(actual, expected, name)
        extra = set(actual) - set(expected) - {"DUMB_INIT_SETSID", *INIT_ONLY, *COMPOSE_ONLY_AIRFLOW}
        assert not extra, f"{name}: variables not produced by mlops.scaleout.environment(): {extra}"


def test_service_envs_mirror_scaleout(rendered, env_example):
    e, s = scaleout.compose_endpoints(env_example), scaleout.compose_secrets(env_example)
    svcs = rendered["services"]
    serve_env, expected = svcs["prediction-service"]["environment"], scaleout.serving_environment(e, s)
    _assert_mirrors(serve_env, expected, "prediction-service")
    assert set(serve_env) == set(expected), "the prediction service gets exactly the serving variables"
    _assert_mirrors(svcs["mlflow"]["environment"], scaleout.mlflow_server_environment(e, s), "mlflow")
    assert svcs["mlflow"]["command"] == scaleout.mlflow_server_command("0.0.0.0", 5000, 2)
    init_command = svcs["airflow-init"]["command"]
    assert init_command[init_command.index("--reader-database") + 1] == e.feast_db
    assert {e.mlflow_db, e.mlflow_auth_db, e.feast_db} <= set(init_command)


def test_prediction_service_holds_no_platform_credential(env_example, tmp_path):
    """The service gets its own read-only accounts: with a sentinel per secret, none of the
    platform's reaches it (before: the PostgreSQL superuser password in its Feast registry URL and
    the platform's read-write S3 key)."""
    secret_vars = {k for k in env_example if SECRET_NAME.search(k) or k.endswith("_USER")}
    sentinels = {k: f"sentinel{i}x{k.lower().replace('_', '')}" for i, k in enumerate(sorted(secret_vars))}
    text = "\n".join(f"{k}={sentinels.get(k, v)}" for k, v in env_example.items())
    env = render(text, tmp_path)["services"]["prediction-service"]["environment"]
    got = {k for k, sentinel in sentinels.items() if any(sentinel in str(v) for v in env.values())}
    assert got == SERVING_SECRETS, f"the prediction service receives {sorted(got - SERVING_SECRETS)}"
    registry = json.loads(env["MLOPS_FEAST_REGISTRY"])
    assert registry["path"].startswith(f"postgresql+psycopg://{sentinels['POSTGRES_READER_USER']}:")
    assert registry["schema_mode"] == "verify", "the read-only role must not try to create the tables"
    assert env["AWS_ACCESS_KEY_ID"] == sentinels["MLOPS_S3_SERVING_ACCESS_KEY"]
    assert env["MLFLOW_TRACKING_USERNAME"] == sentinels["MLFLOW_READER_USER"]


def test_every_python_process_logs_in_to_mlflow(rendered, env_example):
    """MLflow runs its basic-auth app; Airflow uses the admin login, the prediction service the reader's."""
    svcs = rendered["services"]
    mlflow_env = svcs["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_AUTH_ADMIN_USERNAME"] == env_example["MLFLOW_ADMIN_USER"]
    assert mlflow_env[scaleout.MLFLOW_READER_USERNAME_ENV] == env_example["MLFLOW_READER_USER"]
    assert mlflow_env[scaleout.MLFLOW_AUTH_DB_ENV].endswith("@postgres:5432/mlflow_auth")
    assert "basic-auth" in scaleout.mlflow_server_args("0.0.0.0", 5000, 2)
    for name in AIRFLOW_LONG_RUNNING:
        env = svcs[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"] == env_example["MLFLOW_ADMIN_USER"], name
        assert env["MLFLOW_TRACKING_PASSWORD"] == env_example["MLFLOW_ADMIN_PASSWORD"], name
    serving = svcs["prediction-service"]["environment"]
    assert serving["MLFLOW_TRACKING_USERNAME"] == env_example["MLFLOW_READER_USER"]
    assert serving["MLFLOW_TRACKING_PASSWORD"] == env_example["MLFLOW_READER_PASSWORD"]


def test_redis_requires_its_password(rendered, env_example, tmp_path):
    """Every Redis client carries REDIS_PASSWORD; the redis service's own command, run as Docker runs
    it (its image's docker-entrypoint.sh stubbed to add a free loopback port), starts a real
    redis-server that refuses a client without the password and accepts one with it."""
    import redis

    password = env_example["REDIS_PASSWORD"]
    svcs = rendered["services"]
    for name in AIRFLOW_LONG_RUNNING:
        assert svcs[name]["environment"]["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{password}@redis:6379/0"
    for name in ("prediction-service", *AIRFLOW_LONG_RUNNING):
        online = json.loads(svcs[name]["environment"]["MLOPS_FEAST_ONLINE_STORE"])
        assert online["connection_string"] == f"redis:6379,db=1,password={password}", name
    service = svcs["redis"]
    assert password not in " ".join(service["command"]), "the password would show in `ps`"
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    from mlops.dev.embedded import free_port

    port = free_port()
    stub = tmp_path / "docker-entrypoint.sh"
    stub.write_text(
        f'#!/bin/sh\nshift\nexec {exe} --port {port} --bind 127.0.0.1 --dir {tmp_path} --appendonly no "$@"\n'
    )
    stub.chmod(0o755)
    command = [part.replace("$$", "$") for part in service["command"]]  # compose's escape, as Docker runs it
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", **service["environment"]}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.2)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password="wrong-password", socket_timeout=5).ping()
        # The health check (redis-cli reads the password from REDISCLI_AUTH), pointed at this port.
        kind, check = service["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and "redis-cli ping" in check
        check = check.replace("redis-cli", f"redis-cli -p {port}")
        assert subprocess.run(["sh", "-c", check], env=env, timeout=30).returncode == 0
        without = {k: v for k, v in env.items() if k != "REDISCLI_AUTH"}
        assert subprocess.run(["sh", "-c", check], env=without, timeout=30).returncode != 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_minio_init_creates_the_serving_account(rendered, env_example, tmp_path):
    """minio-init's script, run with a recording ``mc``: the serving account gets the policy
    mlops.scaleout.serving_s3_policy() (read the lake, write predictions_online/ only), not readwrite."""
    service = rendered["services"]["minio-init"]
    calls = tmp_path / "calls"
    stub = tmp_path / "mc"
    stub.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\nif [ "$3" = "create" ]; then cp "$6" {tmp_path}/policy.json; fi\n'
    )
    stub.chmod(0o755)
    script = service["command"][0].replace("$$", "$")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", **service["environment"]}
    proc = subprocess.run(
        [*service["entrypoint"], script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "policy.json").read_text()) == scaleout.serving_s3_policy(
        scaleout.LAKE_BUCKET
    )
    lines = calls.read_text().splitlines()
    serving = env_example["MLOPS_S3_SERVING_ACCESS_KEY"]
    assert f"admin policy attach local mlops-serving --user {serving}" in lines
    assert not any("readwrite" in line and serving in line for line in lines)
    assert f"admin policy attach local readwrite --user {env_example['MLOPS_S3_ACCESS_KEY']}" in lines


def test_config_check_refuses_placeholders_naming_each(rendered, env_example):
    """The first service runs `python -m mlops.scaleout check-env` on the values it is given: with the
    .env.example placeholders it refuses, naming every one (MINIO_ROOT_PASSWORD included, which
    nothing checked before)."""
    service = rendered["services"]["config-check"]
    assert service["command"] == ["python", "-m", "mlops.scaleout", "check-env"]
    assert set(service["environment"]) == set(scaleout.REQUIRED_VARIABLES) | set(scaleout.ACCOUNT_VARIABLES)
    env = {"PATH": "/usr/bin:/bin", **{k: str(v) for k, v in service["environment"].items()}}
    proc = subprocess.run(
        [sys.executable, "-m", "mlops.scaleout", "check-env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    placeholders = {k for k, v in env_example.items() if v.startswith(scaleout.PLACEHOLDER_PREFIX)}
    assert "MINIO_ROOT_PASSWORD" in placeholders
    for name in placeholders:
        assert f"{name} still holds the .env.example placeholder" in proc.stderr, name
    assert "Traceback" not in proc.stderr
    for value in (env_example[k] for k in placeholders):
        assert value not in proc.stderr, "the message must not echo a value"


def test_check_env_accepts_real_values_and_refuses_shared_accounts(env_example):
    good = {
        **env_example,
        **{k: f"{k.lower().replace('_', '-')}-0123456789abcdef" for k in scaleout.REQUIRED_VARIABLES},
        "AIRFLOW_FERNET_KEY": "bXlvd24tZmVybmV0LWtleS10aGF0LWlzLTMyLWJ5dGU=",
        "MINIO_ROOT_USER": "root-account",
        "MLOPS_S3_ACCESS_KEY": "platform-account",
    }
    assert scaleout.env_problems(good) == []
    shared = {
        **good,
        "POSTGRES_READER_USER": good["POSTGRES_USER"],
        "REDIS_PASSWORD": "with/slash-0123456789",
    }
    problems = scaleout.env_problems(shared)
    assert (
        "POSTGRES_READER_USER is the same account as POSTGRES_USER: give the prediction service its own"
        in problems
    )
    assert any(p.startswith("REDIS_PASSWORD holds characters") for p in problems)
    with pytest.raises(SystemExit, match="MINIO_ROOT_PASSWORD is shorter than 8 characters"):
        scaleout.check_env({**good, "MINIO_ROOT_PASSWORD": "short"})


def test_required_variables_are_the_ones_env_example_marks():
    marked, pending = set(), False
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("# REQUIRED."):
            pending = True
        elif not line.strip():
            pending = False
        elif not line.startswith("#"):
            if pending:
                marked.add(line.split("=", 1)[0])
            pending = False
    assert marked == set(scaleout.REQUIRED_VARIABLES)


def test_logging_levels_follow_quiet_loggers(rendered):
    levels = rendered["services"]["airflow-scheduler"]["environment"]["AIRFLOW__LOGGING__NAMESPACE_LEVELS"]
    assert dict(pair.split("=") for pair in levels.split()) == config.QUIET_LOGGERS


def test_no_secret_literal_in_the_resolved_config(env_example, tmp_path):
    """Give every secret a sentinel: each credential in the resolved file must be one of them."""
    secret_vars = {k for k in env_example if SECRET_NAME.search(k) or k == "POSTGRES_USER"}
    sentinels = {k: f"sentinel{i}x{k.lower().replace('_', '')}" for i, k in enumerate(sorted(secret_vars))}
    text = "\n".join(f"{k}={sentinels.get(k, v)}" for k, v in env_example.items())
    resolved = render(text, tmp_path)
    found = set()
    for name, svc in resolved["services"].items():
        env = svc.get("environment", {}) or {}
        for key, value in env.items():
            value = str(value)
            if SECRET_NAME.search(key) and key != "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE":
                assert any(s in value for s in sentinels.values()), f"{name}: {key} is a literal secret"
            for _user, password in re.findall(r"://([^:/@\s]+):([^@\s]+)@", value):
                assert password in sentinels.values(), f"{name}: {key} embeds a literal password"
            if key == "AIRFLOW_CONN_AWS_DEFAULT":
                conn = json.loads(value)
                assert conn["password"] in sentinels.values(), "aws_default password is a literal"
            found |= {k for k, s in sentinels.items() if s in value}
    assert found == secret_vars, f"secrets never used: {sorted(secret_vars - found)}"


# ------------------------------------------------------------------------------ the files as written


def test_every_variable_is_documented_in_env_example(env_example):
    text = COMPOSE.read_text()
    used = {m.group(1) for m in VAR_REF.finditer(text)}
    assert used, "no ${VAR} found in docker-compose.yaml"
    assert used <= set(env_example), f"undocumented in .env.example: {sorted(used - set(env_example))}"
    assert set(env_example) <= used, f"in .env.example but unused: {sorted(set(env_example) - used)}"


def test_secrets_are_required_never_defaulted(env_example):
    text = COMPOSE.read_text()
    refs: dict[str, set[str]] = {}
    for m in VAR_REF.finditer(text):
        refs.setdefault(m.group(1), set()).add(m.group(2) or "")
    for var, ops in refs.items():
        if SECRET_NAME.search(var):
            assert ":-" not in ops and "-" not in ops, f"{var} has a default in docker-compose.yaml"
            assert ":?" in ops, f"{var} is never required with ${{{var}:?message}}"


def test_env_example_holds_placeholders_only(env_example):
    for var, value in env_example.items():
        if SECRET_NAME.search(var) and not var.endswith(("_USER", "ACCESS_KEY")):
            assert value.startswith(scaleout.PLACEHOLDER_PREFIX), f".env.example: {var} is not a placeholder"


def test_init_job_refuses_placeholders(env_example):
    e, s = scaleout.compose_endpoints(env_example), scaleout.compose_secrets(env_example)
    with pytest.raises(SystemExit, match="AIRFLOW__CORE__FERNET_KEY"):
        scaleout.check_secrets(scaleout.environment(e, s))


def test_dotenv_is_git_ignored_and_kept_out_of_the_image():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    dockerignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ".env" in dockerignore and ".env.*" in dockerignore


def test_dockerfile_builds_from_the_lock_without_secrets():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11\s*$", text, re.M)
    assert "uv export --frozen --no-dev" in text and "--require-hashes" in text
    assert "--editable ." in text, "the image installs the mlops package"
    for line in text.splitlines():
        if re.match(r"\s*(ENV|ARG)\s", line):
            name = re.split(r"[\s=]", line.strip(), maxsplit=2)[1]
            assert not SECRET_NAME.search(name), f"Dockerfile bakes {name}"
    assert not re.search(r"^\s*COPY\s+\.\s", text, re.M), "COPY . would take local state into the image"


def test_raw_file_uses_the_built_image(raw):
    for name in ("config-check", "airflow-init", "mlflow", "prediction-service", *AIRFLOW_LONG_RUNNING):
        svc = raw["services"][name]
        assert svc["build"]["dockerfile"] == "Dockerfile", name
