"""The rules every DAG in ``dags/`` must keep (see DESIGN.md, "Rules that hold everywhere")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops.dev.checks import parse_dag_file
from tests.dags.conftest import DAG_FILES, DAGS

EXPECTED_DAGS = {
    "flights_upstream_simulator",
    "ingest_flights",
    "ingest_weather",
    "materialize_features",
    "train_model",
    "train_air_time",
    "batch_predict",
    "batch_predict_air_time",
    "monitor_drift",
    "monitor_drift_air_time",
    "rollout_guard",
}


def test_no_import_errors(dagbag):
    assert not dagbag.import_errors, f"DAG import errors: {dagbag.import_errors}"


def test_dag_files_present():
    assert DAG_FILES, "dags/ holds no DAG file"


def test_every_dag_id_is_its_file_stem(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag_id == DAGS.joinpath(dag.fileloc).stem or dag.fileloc.endswith(f"/{dag_id}.py"), (
            f"dag_id {dag_id!r} is defined in {dag.fileloc}; dag_id must equal the file stem"
        )


def test_only_contract_dag_ids(dagbag):
    unknown = set(dagbag.dags) - EXPECTED_DAGS
    assert not unknown, f"DAG ids not in DESIGN.md: {unknown}"


def test_dags_have_tags_owner_doc(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id}: doc_md missing or too short"
        assert dag.owner and dag.owner != "airflow", f"{dag_id}: owner not set (got {dag.owner!r})"


def test_tasks_have_retries_and_timeouts(dagbag):
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id}: retries={task.retries} (< 2)"
            timeout = task.execution_timeout
            assert isinstance(timeout, timedelta) and timeout > timedelta(0), (
                f"{dag_id}.{task.task_id}: no execution_timeout"
            )


def test_no_cycles(dagbag):
    from airflow.utils.dag_cycle_tester import check_cycle

    for dag in dagbag.dags.values():
        check_cycle(dag)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_is_light(path, record_property):
    result = parse_dag_file(path)
    record_property("parse_seconds", round(result["seconds"], 3))
    print(f"\nparse time {path.name}: {result['seconds']:.3f}s")
    assert not result["heavy"], f"{path.name} imports heavy modules at parse time: {result['heavy']}"


def test_taskflow_arguments_do_not_shadow_context_keys(dagbag):
    """A TaskFlow task given ``ds`` (or any context key) positionally fails at run time with "The key
    'ds' in args is a part of kwargs and therefore reserved" (seen in batch_predict). Catch it at
    parse time."""
    import inspect
    import itertools

    from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS

    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            fn = getattr(task, "python_callable", None)
            if fn is None:
                continue
            params = inspect.signature(fn).parameters
            positional = itertools.islice(params, len(getattr(task, "op_args", None) or ()))
            passed = set(positional) | set(getattr(task, "op_kwargs", None) or {})
            clash = sorted(passed & set(KNOWN_CONTEXT_KEYS))
            assert not clash, f"{dag_id}.{task.task_id} is passed context key(s) {clash} as arguments"
