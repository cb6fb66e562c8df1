"""A version logged by the project's own code (tracking.log_training) is portable and hash-checked.

Against a real MLflow (SQLite backend and local artifacts in a temporary home):

* the version is logged as code (``booster_model.py`` beside ``MLmodel``, ``model_code_path``, no
  pickled ``python_model``), with the sha256 of its booster and metadata in its model config and
  its signature and input example kept;
* ``models:/flight_delay_xgb@champion`` loads and predicts in a process where ``mlops`` cannot be
  imported, the same probabilities as the training model and as the prediction service's path;
* a booster changed in the artifact store is refused by ``load_version`` (the version, the file,
  both hashes) and by ``mlflow.pyfunc.load_model``;
* a version logged the old way (the cloudpickled class) still loads in the repo (the service loads
  it unverified); outside it, it fails with ``No module named 'mlops'``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlops.config import CHAMPION, MODEL_NAME
from mlops.models import booster_model, registry
from mlops.models.tracking import BOOSTER_SHA256_TAG, client, example_input
from mlops.serving.model import load_version
from tests.conftest import use_home
from tests.integration._registry_helpers import frame, train_and_register
from tests.unit.test_booster_model import BLOCK_MLOPS

#: Trains a model and starts Python subprocesses (minutes on a loaded machine); the fast tier has
#: the same checks on local model directories (tests/unit/test_booster_model.py).
pytestmark = pytest.mark.slow

#: Loads a model URI in a child process where ``mlops`` cannot be imported; prints the predictions.
PREDICT_WITHOUT_MLOPS = BLOCK_MLOPS + textwrap.dedent(
    """
    import json, mlflow, pandas as pd
    mlflow.set_tracking_uri(sys.argv[3])
    rows = pd.read_json(sys.argv[2], orient="split", dtype=False)
    try:
        model = mlflow.pyfunc.load_model(sys.argv[1])
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    else:
        print(json.dumps({"p": [float(x) for x in model.predict(rows)]}))
    """
)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("portable"))
        yield h


@pytest.fixture(scope="module")
def trained(home):
    data = frame()
    version, result = train_and_register(data, n_candidates=1, n_estimators=40)
    client().set_registered_model_alias(MODEL_NAME, CHAMPION, version)  # the gate is tested elsewhere
    rows = example_input(data, result.model, rows=200)
    return {"version": version, "result": result, "rows": rows, "data": data}


def _local_model_dir(version: str) -> Path:
    """The version's files where the local artifact store keeps them (not a downloaded copy)."""
    uri = client().get_model_version_download_uri(MODEL_NAME, version)
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


def _predict_without_mlops(uri: str, rows, tmp_path: Path, tracking_uri: str) -> dict:
    path = tmp_path / "rows.json"
    rows.to_json(path, orient="split")
    done = subprocess.run(
        [sys.executable, "-c", PREDICT_WITHOUT_MLOPS, uri, str(path), tracking_uri],
        capture_output=True,
        text=True,
        timeout=600,
        cwd="/",
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_version_is_logged_as_code_with_hashes_signature_and_example(trained):
    import mlflow
    from mlflow.models import Model

    version = trained["version"]
    directory = _local_model_dir(version)
    conf = Model.load(str(directory)).flavors["python_function"]
    assert "python_model" not in conf and Path(conf["model_code_path"]).name == "booster_model.py"
    assert (directory / "booster_model.py").read_text() == Path(booster_model.__file__).read_text()
    booster, meta = trained["result"].model.to_bytes()
    assert conf["config"]["booster_sha256"] == booster_model.sha256_bytes(booster)
    assert conf["config"]["meta_sha256"] == booster_model.sha256_bytes(meta.encode())
    assert conf["config"]["model_name"] == MODEL_NAME
    assert (directory / conf["artifacts"]["booster"]["path"]).read_bytes() == booster
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/{version}")
    assert info.signature is not None and "carrier" in info.signature.inputs.input_names()
    assert (directory / "serving_input_example.json").exists()
    run = mlflow.get_run(registry.version_info(version).run_id)
    assert run.data.tags[BOOSTER_SHA256_TAG] == conf["config"]["booster_sha256"]


def test_champion_predicts_without_mlops_and_equals_the_repo_paths(trained, tmp_path, home):
    from mlops.config import get_settings

    rows, model = trained["rows"], trained["result"].model
    expected = model.predict(rows)
    out = _predict_without_mlops(
        f"models:/{MODEL_NAME}@champion", rows, tmp_path, get_settings().mlflow_tracking_uri
    )
    assert "p" in out, out
    assert np.array_equal(np.asarray(out["p"]), expected)
    # The gate's and batch scoring's path, and the prediction service's.
    assert np.array_equal(registry.predictor(trained["version"])(rows), expected)
    served = load_version(trained["version"])
    assert served.verified and served.booster_sha256 == booster_model.sha256_bytes(model.to_bytes()[0])
    assert served.describe()["verified"] is True
    assert np.allclose(served.predict_rows(rows.to_dict("records")), expected, rtol=0, atol=1e-6)


def test_changed_booster_is_refused_naming_version_file_and_hashes(trained, home):
    import mlflow.pyfunc

    # A separate version of the same run's model, so the champion stays intact for other tests.
    version, result = train_and_register(trained["data"], n_candidates=1, n_estimators=5)
    booster = _local_model_dir(version) / "artifacts" / "booster.ubj"
    recorded = booster_model.sha256_bytes(result.model.to_bytes()[0])
    booster.write_bytes(booster.read_bytes()[:-1] + b"\x00")
    actual = booster_model.sha256_bytes(booster.read_bytes())
    with pytest.raises(booster_model.ArtifactHashError) as err:
        load_version(version)
    message = str(err.value)
    assert f"{MODEL_NAME} version {version}" in message
    assert "booster.ubj" in message and recorded in message and actual in message
    run_id = registry.version_info(version).run_id
    with pytest.raises(
        Exception,
        match=f"model {MODEL_NAME} \\(run {run_id}\\): .*booster.ubj has sha256 {actual}, but {recorded} was recorded",
    ):
        mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}")


def test_legacy_cloudpickled_version_loads_in_the_repo_only(trained, tmp_path, home, caplog):
    """Versions logged before this change: the repo (gate, scoring) and the service still load them;
    a clean environment cannot (MLflow unpickles ``mlops.models.tracking.FlightDelayPyfunc``)."""
    import tempfile

    import mlflow
    import mlflow.pyfunc

    from mlops.config import get_settings
    from mlops.models.tracking import FlightDelayPyfunc, ensure_experiment

    model, rows = trained["result"].model, trained["rows"]
    ensure_experiment()
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        booster, meta = model.to_bytes()
        (Path(tmp) / "booster.ubj").write_bytes(booster)
        (Path(tmp) / "meta.json").write_text(meta)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FlightDelayPyfunc(),
            artifacts={"booster": str(Path(tmp) / "booster.ubj"), "meta": str(Path(tmp) / "meta.json")},
        )
    version = registry.register(run.info.run_id, info.model_uri)
    expected = model.predict(rows)
    assert np.array_equal(registry.predictor(version)(rows), expected)
    with caplog.at_level(logging.WARNING, logger="mlops.serving.model"):
        served = load_version(version)
    assert not served.verified and "unverified" in caplog.text
    assert np.allclose(served.predict_rows(rows.to_dict("records")), expected, rtol=0, atol=1e-6)
    out = _predict_without_mlops(
        f"models:/{MODEL_NAME}/{version}", rows, tmp_path, get_settings().mlflow_tracking_uri
    )
    assert "No module named 'mlops'" in out.get("error", ""), out
