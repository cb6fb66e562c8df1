"""The champion loads, predicts and serves in a clean environment: only what MLflow recorded for it.

A small model is trained and registered by the project's own code (``tracking.log_training``,
``registry.register``) into a temporary MLflow (SQLite, local artifacts) and made ``@champion``.
Then a new virtualenv (``uv venv``) gets exactly the ``requirements.txt`` MLflow recorded for the
version (``uv pip install -r``), nothing else: no project, no ``include/`` on its path, run from a
directory outside the repository. There:

* ``mlflow.pyfunc.load_model("models:/flight_delay_xgb@champion").predict(example)``;
* ``mlflow models predict -m models:/flight_delay_xgb@champion -i <serving example> --env-manager local``;
* ``mlflow models serve -m models:/flight_delay_xgb@champion --env-manager local -h 127.0.0.1 -p <port>``
  answering ``POST /invocations`` with the version's serving example;

each gives the probabilities the training model gives in the repository, exactly. Every command
and its output go to ``portable-proof.log`` in the test's home (and to the test's log on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlops.config import CHAMPION, MODEL_NAME, REPO_ROOT
from mlops.models.tracking import client
from tests.conftest import use_home
from tests.e2e._serving_home import free_port
from tests.integration._registry_helpers import frame, train_and_register

pytestmark = pytest.mark.slow

URI = f"models:/{MODEL_NAME}@{CHAMPION}"


def _uv() -> str:
    found = shutil.which("uv") or str(REPO_ROOT / ".uv" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv not found (neither on PATH nor .uv/bin/uv): run `make install` first")
    return found


class Clean:
    """A virtualenv holding only the version's recorded requirements; commands logged to a file."""

    def __init__(self, root: Path, tracking_uri: str) -> None:
        self.root = root
        self.venv = root / "venv"
        self.work = root / "work"  # the working directory: outside the repository
        self.work.mkdir(parents=True)
        self.log = root / "portable-proof.log"
        # The caller's environment (proxies, certificates) without the project: no MLOPS_*, no
        # MLFLOW_* but the tracking URI, no PYTHONPATH, the repository's virtualenv off PATH.
        path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if str(REPO_ROOT) not in p]
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLOPS_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV", "UV_PROJECT", "AIRFLOW"))
        }
        self.env.update(
            {
                "PATH": ":".join([str(self.venv / "bin"), *path]),
                "MLFLOW_TRACKING_URI": tracking_uri,
                "VIRTUAL_ENV": str(self.venv),
                "PYTHONWARNINGS": "ignore",
            }
        )

    def record(self, cmd: list[str], done: subprocess.CompletedProcess[str] | None, note: str = "") -> None:
        with self.log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n{note}")
            if done is not None:
                out.write(f"{done.stdout[-4000:]}{done.stderr[-4000:]}[exit {done.returncode}]\n\n")

    def run(self, *cmd: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(cmd), cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        self.record(list(cmd), done)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def python(self, code: str, timeout: float = 900) -> str:
        return self.run(str(self.venv / "bin" / "python"), "-c", code, timeout=timeout).stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("portable-e2e"))
        yield h


@pytest.fixture(scope="module")
def champion(home):
    """The project trains and registers a small model; it becomes ``@champion``."""
    import mlflow
    from mlflow.models import Model

    from mlops.config import get_settings

    data = frame()
    version, result = train_and_register(data, n_candidates=1, n_estimators=40)
    client().set_registered_model_alias(MODEL_NAME, CHAMPION, version)  # the gate is tested elsewhere
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=URI, dst_path=str(home / "champion")))
    example = Model.load(str(local)).load_input_example(str(local))
    return {
        "version": version,
        "dir": local,
        "requirements": local / "requirements.txt",
        "serving_example": local / "serving_input_example.json",
        "expected": result.model.predict(example),  # the training model, in the repository
        "tracking_uri": get_settings().mlflow_tracking_uri,
    }


@pytest.fixture(scope="module")
def clean(home, champion):
    env = Clean(home / "clean", champion["tracking_uri"])
    uv = _uv()
    env.run(uv, "venv", "--python", sys.executable, "--no-project", str(env.venv), timeout=300)
    env.run(
        uv,
        "pip",
        "install",
        "--python",
        str(env.venv / "bin" / "python"),
        "-r",
        str(champion["requirements"]),
    )
    found = env.python("import importlib.util, sys; print(importlib.util.find_spec('mlops'), sys.path)")
    assert found.startswith("None "), f"mlops is importable in the clean environment: {found}"
    assert str(REPO_ROOT) not in found
    return env


def test_recorded_requirements_are_pinned(champion):
    pins = champion["requirements"].read_text().split()
    assert {p.split("==")[0] for p in pins} >= {"mlflow", "xgboost", "pandas", "numpy"}
    assert all("==" in p for p in pins if not p.startswith("#")), pins


def test_load_model_and_predict_in_the_clean_environment(clean, champion):
    out = clean.python(
        "import json, mlflow, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model({URI!r})\n"
        f"body = json.load(open({str(champion['serving_example'])!r}))['dataframe_split']\n"
        "example = pd.DataFrame(body['data'], columns=body['columns'])\n"
        "print(json.dumps([float(p) for p in m.predict(example)]))\n"
    )
    got = np.asarray(json.loads(out.strip().splitlines()[-1]))
    assert np.array_equal(got, champion["expected"]), (got, champion["expected"])


def test_mlflow_models_predict_in_the_clean_environment(clean, champion):
    out = clean.root / "predict-out.json"
    clean.run(
        str(clean.venv / "bin" / "mlflow"),
        "models",
        "predict",
        "-m",
        URI,
        "-i",
        str(champion["serving_example"]),
        "-t",
        "json",
        "-o",
        str(out),
        "--env-manager",
        "local",
    )
    got = np.asarray(json.loads(out.read_text())["predictions"], dtype="float64")
    assert np.array_equal(got, champion["expected"]), (got, champion["expected"])


def test_mlflow_models_serve_answers_invocations(clean, champion):
    import httpx

    port = free_port()
    cmd = [
        str(clean.venv / "bin" / "mlflow"),
        *("models", "serve", "-m", URI, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)),
    ]
    log = (clean.root / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        cmd, cwd=clean.work, env=clean.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, f"mlflow models serve exited: {Path(log.name).read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/ping", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not ready in 600 s: {Path(log.name).read_text()[-3000:]}"
            time.sleep(1)
        body = champion["serving_example"].read_text()
        resp = httpx.post(
            f"{url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=120
        )
        clean.record(
            [
                *cmd,
                "&&",
                "curl",
                "-X",
                "POST",
                f"{url}/invocations",
                "-H",
                "Content-Type: application/json",
                "-d",
                "@serving_input_example.json",
            ],
            None,
            f"HTTP {resp.status_code}\n{resp.text}\n\n",
        )
        assert resp.status_code == 200, resp.text
        got = np.asarray(resp.json()["predictions"], dtype="float64")
        assert np.array_equal(got, champion["expected"]), (got, champion["expected"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        log.close()
