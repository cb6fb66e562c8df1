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

import pytest
import yaml

from mlops import config, scaleout
from tests.conftest import IN_CI, REPO

COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

SERVICES = {
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
}
ONE_SHOT = {"minio-init", "airflow-init"}
AIRFLOW_LONG_RUNNING = {
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
#: Names of variables that hold a credential.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY|_KEY$|ROOT_USER", re.I)
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
        extra = set(actual) - set(expected) - {"DUMB_INIT_SETSID", "AIRFLOW_ADMIN_PASSWORD"}
        assert not extra, f"{name}: variables not produced by mlops.scaleout.environment(): {extra}"


def test_service_envs_mirror_scaleout(rendered, env_example):
    e, s = scaleout.compose_endpoints(env_example), scaleout.compose_secrets(env_example)
    svcs = rendered["services"]
    serve_env, expected = svcs["prediction-service"]["environment"], scaleout.mlops_environment(e, s)
    _assert_mirrors(serve_env, expected, "prediction-service")
    assert set(serve_env) == set(expected), "the prediction service gets exactly the mlops variables"
    _assert_mirrors(svcs["mlflow"]["environment"], scaleout.mlflow_server_environment(e, s), "mlflow")
    assert svcs["mlflow"]["command"][:2] == ["mlflow", "server"]


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
        if SECRET_NAME.search(var) and not var.endswith("_USER") and var != "MLOPS_S3_ACCESS_KEY":
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
    for name in ("airflow-init", "mlflow", "prediction-service", *AIRFLOW_LONG_RUNNING):
        svc = raw["services"][name]
        assert svc["build"]["dockerfile"] == "Dockerfile", name
