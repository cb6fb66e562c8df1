"""The registry finds a version's spec from its run (a team's spec given by import path gates
without a line in SPECS) and reads a model's aliases in one call."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(mlops_home):
    from mlops.models import tracking

    return tracking.client()  # tracking and registry on this home (not the process default's)


def _version(client, name: str, tags: dict[str, str]):
    found = client.get_experiment_by_name(f"registry-specs-{name}")
    experiment = found.experiment_id if found else client.create_experiment(f"registry-specs-{name}")
    run = client.create_run(experiment, tags=tags)
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except Exception:  # already registered by an earlier call in this test
        pass
    return client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)


def test_a_versions_spec_comes_from_its_run_else_from_specs(client):
    from mlops.models.registry import spec_of_version
    from mlops.spec.model import SPECS

    synthetic = _version(client, "machine_failure_xgb", {"mlops.spec": "tests.unit._synthetic_spec:SPEC"})
    spec = spec_of_version(synthetic)
    assert "machine_failure" not in SPECS and spec.model_name == "machine_failure_xgb"
    assert spec.import_path == "tests.unit._synthetic_spec:SPEC"

    untagged = _version(client, "flight_air_time_xgb", {})  # a run from before the tag: SPECS
    assert spec_of_version(untagged).name == "air_time"

    unknown = _version(client, "no_spec_xgb", {})
    with pytest.raises(ValueError, match="no model spec registers the model 'no_spec_xgb'"):
        spec_of_version(unknown)


def test_current_aliases_in_one_read(client):
    from mlops.config import CHAMPION, PREVIOUS
    from mlops.models.registry import _champion_and_previous, current_aliases

    assert current_aliases(name="not_registered_xgb") == {}
    first = _version(client, "alias_test_xgb", {})
    second = _version(client, "alias_test_xgb", {})
    assert current_aliases(name="alias_test_xgb") == {}
    assert _champion_and_previous(None, "alias_test_xgb") == (None, None)
    client.set_registered_model_alias("alias_test_xgb", CHAMPION, second.version)
    client.set_registered_model_alias("alias_test_xgb", PREVIOUS, first.version)
    assert current_aliases(name="alias_test_xgb") == {CHAMPION: "2", PREVIOUS: "1"}
    assert _champion_and_previous(None, "alias_test_xgb") == ("2", "1")
