"""The logged model's code (mlops.models.booster_model): portable, same predictions, hash-checked.

* The file MLflow stores with every version imports nothing from ``mlops`` and only packages the
  version's requirements pin; it loads (and a saved model predicts) in a process where ``mlops``
  cannot be imported, where the cloudpickled class of earlier versions fails.
* Its encoding is the training model's (``DelayModel.matrix``/``predict`` call it), value for value.
* A booster or metadata file whose sha256 differs from the recorded one is refused, naming the
  model, the file and both hashes.

Local model directories (``mlflow.pyfunc.save_model``), no tracking server, no registry.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.models import booster_model
from mlops.models.tracking import MODEL_CODE, MODEL_REQUIREMENTS, FlightDelayPyfunc
from mlops.training.model import DelayModel

CATEGORIES = {"carrier": ["AA", "B6", "UA"], "origin": ["EWR", "JFK", "LGA"]}
FEATURES = ["distance", "carrier", "sched_dep_hour", "origin"]
#: Import names of the pinned requirements the model code may use.
IMPORT_NAMES = {"mlflow": "mlflow", "numpy": "numpy", "pandas": "pandas", "xgboost": "xgboost"}

#: Runs in a child process: ``mlops`` cannot be imported there (as in a clean environment).
BLOCK_MLOPS = """
import importlib.abc, sys
class _NoMlops(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mlops" or name.startswith("mlops."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoMlops())
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("include")]
"""


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "distance": rng.uniform(100, 2500, n),
            "carrier": pd.Categorical(rng.choice(CATEGORIES["carrier"], n), categories=CATEGORIES["carrier"]),
            "sched_dep_hour": rng.integers(5, 23, n).astype("float64"),
            "origin": pd.Categorical(rng.choice(CATEGORIES["origin"], n), categories=CATEGORIES["origin"]),
        }
    )
    out["label"] = ((out["sched_dep_hour"] > 15) ^ (out["carrier"] == "B6")).astype("float64")
    return out


@pytest.fixture(scope="module")
def delay_model() -> DelayModel:
    import xgboost as xgb

    train = frame()
    dm = xgb.DMatrix(train[FEATURES], label=train["label"], enable_categorical=True)
    params = {"objective": "binary:logistic", "max_depth": 3, "max_cat_to_onehot": 1, "seed": 0, "nthread": 1}
    return DelayModel(
        booster=xgb.train(params, dm, num_boost_round=15), features=FEATURES, categories=CATEGORIES
    )


def odd_rows() -> pd.DataFrame:
    """What callers send: strings, unknown and missing categories, numbers as strings, garbage."""
    rows = frame(40, seed=1)[FEATURES].astype({"carrier": "object", "origin": "object"})
    rows.loc[0, "carrier"] = "ZZ"
    rows.loc[1, "carrier"] = None
    rows.loc[2, "origin"] = np.nan
    rows["distance"] = rows["distance"].astype("object")
    rows.loc[3, "distance"] = "1200.5"
    rows.loc[4, "distance"] = "far"
    rows.loc[5, "sched_dep_hour"] = np.nan
    return rows


def save(directory: Path, model: DelayModel, *, legacy: bool = False) -> Path:
    """A local model directory as tracking logs it (``legacy``: the cloudpickled class of before)."""
    import mlflow.pyfunc

    booster, meta = model.to_bytes()
    files = directory / "files"
    files.mkdir(parents=True)
    (files / "booster.ubj").write_bytes(booster)
    (files / "meta.json").write_text(meta)
    path = directory / "model"
    artifacts = {"booster": str(files / "booster.ubj"), "meta": str(files / "meta.json")}
    if legacy:
        mlflow.pyfunc.save_model(path, python_model=FlightDelayPyfunc(), artifacts=artifacts)
    else:
        config = {
            "booster_sha256": booster_model.sha256_bytes(booster),
            "meta_sha256": booster_model.sha256_bytes(meta.encode()),
            "run_id": "test",
        }
        mlflow.pyfunc.save_model(path, python_model=str(MODEL_CODE), artifacts=artifacts, model_config=config)
    return path


def run_python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600, cwd="/"
    )


# --------------------------------------------------------------------------------------------------
# Portable: no mlops
# --------------------------------------------------------------------------------------------------


def test_model_code_imports_only_pinned_requirements_and_the_standard_library():
    tree = ast.parse(MODEL_CODE.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            pytest.fail(f"relative import in {MODEL_CODE}: MLflow runs the file alone")
    third_party = {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}
    allowed = {IMPORT_NAMES[req] for req in MODEL_REQUIREMENTS if req in IMPORT_NAMES}
    assert "mlops" not in roots
    assert third_party <= allowed, f"{MODEL_CODE} imports {third_party - allowed}, not in the requirements"


#: In a process where ``mlops`` cannot be imported: run the model code as MLflow does, then load
#: and score the saved model directories given as arguments; one JSON line per step.
WITHOUT_MLOPS = BLOCK_MLOPS + textwrap.dedent(
    """
    import json, runpy
    import mlflow.models.model, mlflow.pyfunc, pandas as pd
    try:
        import mlops
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("mlops is still importable")
    runpy.run_path(sys.argv[1], run_name="code_model_test")
    print(json.dumps({"set_model": type(mlflow.models.model.__mlflow_model__).__name__}))
    rows = pd.read_json(sys.argv[2], orient="split", dtype=False)
    for path in sys.argv[3:]:
        try:
            model = mlflow.pyfunc.load_model(path)
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        else:
            print(json.dumps({"p": [float(x) for x in model.predict(rows)]}))
    """
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, delay_model) -> dict[str, Path]:
    """The model saved as code (``new``) and as the cloudpickled class of before (``legacy``)."""
    tmp = tmp_path_factory.mktemp("saved")
    return {"new": save(tmp / "new", delay_model), "legacy": save(tmp / "legacy", delay_model, legacy=True)}


@pytest.fixture(scope="module")
def without_mlops(tmp_path_factory, saved) -> dict:
    """The model code run and the new and legacy model directories loaded, without ``mlops``."""
    tmp = tmp_path_factory.mktemp("portable")
    new, legacy = saved["new"], saved["legacy"]
    rows = odd_rows()
    rows.to_json(tmp / "rows.json", orient="split")
    done = run_python(WITHOUT_MLOPS, str(MODEL_CODE), str(tmp / "rows.json"), str(new), str(legacy))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 3, done.stdout[-3000:] + done.stderr[-3000:]
    return {"code": lines[0], "new": lines[1], "legacy": lines[2], "rows": rows}


def test_model_code_runs_where_mlops_cannot_be_imported(without_mlops):
    assert without_mlops["code"] == {"set_model": "BoosterModel"}


def test_importing_the_module_in_the_repo_sets_no_model():
    """Under its repository name the file does not call ``set_model`` (no import side effect);
    under any other name (MLflow's ``code_model_<id>``) it does."""
    import importlib.util

    import mlflow.models.model as mlflow_model

    def run_as(name: str) -> object:
        mlflow_model.__mlflow_model__ = None
        spec = importlib.util.spec_from_file_location(name, MODEL_CODE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return mlflow_model.__mlflow_model__

    before = mlflow_model.__mlflow_model__
    try:
        assert run_as(booster_model.REPO_MODULE) is None
        assert type(run_as("code_model_test")).__name__ == "BoosterModel"
    finally:
        mlflow_model.__mlflow_model__ = before


def test_saved_model_predicts_without_mlops_and_the_legacy_one_does_not(without_mlops, delay_model):
    """The bug of issue 17 (``No module named 'mlops'``) on the cloudpickled class; the model logged
    as code predicts what the training model predicts, in a process without ``mlops``."""
    assert "p" in without_mlops["new"], without_mlops["new"]
    assert np.array_equal(np.asarray(without_mlops["new"]["p"]), delay_model.predict(without_mlops["rows"]))
    assert "No module named 'mlops'" in without_mlops["legacy"].get("error", ""), without_mlops["legacy"]


def test_legacy_model_still_loads_inside_the_repo(saved, delay_model):
    import mlflow.pyfunc

    rows = odd_rows()
    model = mlflow.pyfunc.load_model(str(saved["legacy"]))
    assert np.array_equal(model.predict(rows), delay_model.predict(rows))


# --------------------------------------------------------------------------------------------------
# Same predictions as the training model
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [frame(50, seed=2)[FEATURES], odd_rows()], ids=["categorical", "odd"])
def test_encoding_is_the_training_models(delay_model, rows):
    """One encoding (DelayModel.matrix calls encode), checked against what it must be: the model's
    columns in order, categories typed with the trained lists (unknown -> missing), numbers float64."""
    encoded = delay_model.matrix(rows)
    pd.testing.assert_frame_equal(booster_model.encode(rows, FEATURES, CATEGORIES), encoded)
    assert list(encoded.columns) == FEATURES and encoded.index.equals(rows.index)
    for col in FEATURES:
        if col in CATEGORIES:
            assert encoded[col].dtype == pd.CategoricalDtype(CATEGORIES[col]), col
            known = rows[col].isin(CATEGORIES[col])
            assert (
                encoded[col][~known].isna().all()
                and (encoded[col][known].astype(object) == rows[col][known]).all()
            )
        else:
            expected = pd.to_numeric(rows[col], errors="coerce").astype("float64")
            pd.testing.assert_series_equal(encoded[col], expected, check_names=False)
    served = booster_model.Booster.from_bytes(*delay_model.to_bytes())
    assert (served.features, served.categories) == (FEATURES, CATEGORIES)
    assert np.array_equal(served.predict(rows), delay_model.predict(rows))


def test_missing_feature_is_named():
    with pytest.raises(KeyError, match=r"lacks model features \['origin'\]"):
        booster_model.encode(frame(3)[FEATURES[:-1]], FEATURES, CATEGORIES)


# --------------------------------------------------------------------------------------------------
# Hash checks
# --------------------------------------------------------------------------------------------------


def test_read_checked_names_model_file_and_both_hashes(tmp_path):
    path = tmp_path / "booster.ubj"
    path.write_bytes(b"booster")
    good = booster_model.sha256_bytes(b"booster")
    assert booster_model.read_checked(path, good, "m v1") == b"booster"
    wrong = "0" * 64
    with pytest.raises(booster_model.ArtifactHashError) as err:
        booster_model.read_checked(path, wrong, "flight_delay_xgb version 7")
    message = str(err.value)
    assert all(s in message for s in ("flight_delay_xgb version 7", str(path), good, wrong))
    with pytest.raises(booster_model.ArtifactHashError, match="no sha256 recorded"):
        booster_model.read_checked(path, None, "m v1")


@pytest.mark.parametrize("name", ["booster.ubj", "meta.json"])
def test_changed_file_is_refused_by_pyfunc_and_by_read_version_files(tmp_path, saved, delay_model, name):
    import shutil

    import mlflow.pyfunc

    path = shutil.copytree(saved["new"], tmp_path / "model")
    booster, meta, verified = booster_model.read_version_files(path, "m v1")
    assert verified and (booster, meta.decode()) == delay_model.to_bytes()
    target = path / "artifacts" / name
    target.write_bytes(target.read_bytes() + b" ")
    with pytest.raises(booster_model.ArtifactHashError, match=f"m v1: .*{name} has sha256"):
        booster_model.read_version_files(path, "m v1")
    with pytest.raises(Exception, match=f"{name} has sha256 .* was recorded"):
        mlflow.pyfunc.load_model(str(path))


def test_legacy_directory_reads_unverified(saved, delay_model):
    booster, meta, verified = booster_model.read_version_files(saved["legacy"], "m v1")
    assert not verified and (booster, meta.decode()) == delay_model.to_bytes()
