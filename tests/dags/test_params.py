"""A misspelt key in a run's conf is refused by the DAG's first task (issue 19).

Airflow adds every ``dag_run.conf`` key to ``params`` without checking it: ``learnng_rate`` used to
train with the default learning rate, ``end_dss`` to build one day instead of a month, ``fualt``
to export a clean day. Each DAG's first task now fails, without retry, naming the key, the
closest declared name and the valid ones. The first tasks run here as Airflow runs them: a
``@task`` callable with the run's merged params, or an operator's template fields rendered with
the DAG's Jinja environment and macros (``dag.test()`` of the same runs: see the report of
issue 19; ``tests/unit/test_cli_errors.py`` refuses the same keys at trigger time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops.airflow.params import InvalidParams, check_params, describe_param_error

DS = "2013-03-05"


def _params(dag: Any, **conf: Any) -> dict[str, Any]:
    """The ``params`` a task of ``dag`` sees for a run with ``conf`` (Airflow merges them)."""
    return {**{name: dag.params[name] for name in dag.params}, **conf}


def _render(dag: Any, task_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Render ``task_id``'s template fields as the task runner does before ``execute``."""
    task = dag.get_task(task_id)
    context = {"params": params, "ds": DS, "dag": dag}
    env = dag.get_template_env()
    return {f: task.render_template(getattr(task, f), context, jinja_env=env) for f in task.template_fields}


def _run_first_task(dag: Any, params: dict[str, Any]) -> Any:
    """Run (or, for an operator, render) the DAG's first task with ``params``."""
    roots = [t for t in dag.tasks if not t.upstream_task_ids]
    assert len(roots) == 1, f"{dag.dag_id}: one first task expected, got {[t.task_id for t in roots]}"
    task = roots[0]
    if dag.dag_id == "train_model":
        end = datetime(2013, 3, 4, tzinfo=UTC)
        fn = task.python_callable
        return fn(params=params, dag_run=None, data_interval_end=end, triggering_asset_events={})
    if dag.dag_id == "train_air_time":
        end = datetime(2013, 3, 4, tzinfo=UTC)
        return task.python_callable(params=params, dag_run=None, data_interval_end=end)
    if dag.dag_id == "materialize_features":
        return task.python_callable(params=params, triggering_asset_events={}, inlet_events={}, dag_run=None)
    if dag.dag_id == "flights_upstream_simulator":
        return task.python_callable(params=params, ds=DS, outlet_events=None)
    return _render(dag, task.task_id, params)


#: A typo per DAG that takes params: (misspelt key, the param it should have been).
TYPOS = {
    "train_model": ("learnng_rate", "learning_rate"),
    "train_air_time": ("promotion_margn", "promotion_margin"),
    "materialize_features": ("end_dss", "end_ds"),
    "ingest_flights": ("allow_partal", "allow_partial"),
    "ingest_weather": ("allow_partal", "allow_partial"),
    "flights_upstream_simulator": ("fualt", "fault"),
    "batch_predict": ("model_verison", "model_version"),
    "batch_predict_air_time": ("model_verison", "model_version"),
    "monitor_drift": ("windw_days", "window_days"),
    "monitor_drift_air_time": ("windw_days", "window_days"),
    "rollout_guard": ("max_auc_dorp", "max_auc_drop"),
}


def test_every_dag_with_params_is_covered(dagbag):
    assert {d for d, dag in dagbag.dags.items() if len(dag.params)} == set(TYPOS)


@pytest.mark.parametrize("dag_id", sorted(TYPOS))
def test_a_misspelt_conf_key_fails_the_first_task_without_retry(dagbag, mlops_home, dag_id):
    dag = dagbag.dags[dag_id]
    typo, meant = TYPOS[dag_id]
    conf = {"start_ds": DS} if dag_id == "materialize_features" else {}
    with pytest.raises(AirflowFailException) as caught:  # no retry: a typo never fixes itself
        _run_first_task(dag, _params(dag, **conf, **{typo: 0.2}))
    message = str(caught.value)
    assert f"unknown param {typo!r} (did you mean {meant!r}?)" in message
    assert f"takes only {', '.join(dag.params)}." in message
    assert isinstance(caught.value, InvalidParams)


@pytest.mark.parametrize("dag_id", ["ingest_flights", "ingest_weather", "batch_predict", "monitor_drift"])
def test_declared_params_still_render(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    rendered = _run_first_task(dag, _params(dag, ds="2013-03-06"))
    assert any("2013-03-06" in str(v) for v in rendered.values()), rendered


def test_declared_params_still_plan(dagbag):
    days = _run_first_task(
        dagbag.dags["materialize_features"],
        _params(dagbag.dags["materialize_features"], start_ds="2013-03-01", end_ds="2013-03-03"),
    )
    assert days == ["2013-03-01", "2013-03-02", "2013-03-03"]


def test_several_unknown_keys_are_all_named():
    with pytest.raises(InvalidParams) as caught:
        check_params({"ds": None, "allow_partal": True, "zzz": 1}, ["ds", "allow_partial"], "ingest_flights")
    assert str(caught.value).startswith(
        "unknown params 'allow_partal' (did you mean 'allow_partial'?), 'zzz' in the run's conf: "
        "ingest_flights takes only ds, allow_partial."
    )
    assert isinstance(caught.value, ValueError)  # callers outside Airflow catch ValueError
    check_params({"ds": None}, ["ds", "allow_partial"])  # declared keys pass


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        (
            {"learning_rate": "abc"},
            "invalid value for param 'learning_rate' of train_model: 'abc' is not of type 'number'; "
            "valid: a number > 0 and <= 1",
        ),
        (
            {"window_days": 5000},
            "invalid value for param 'window_days' of train_model: 5000 is greater than the maximum "
            "of 730; valid: an integer >= 14 and <= 730",
        ),
        (
            {"as_of": "2013-02-30"},
            "invalid value for param 'as_of' of train_model: '2013-02-30' is not a 'date'; "
            "valid: null or a date YYYY-MM-DD",
        ),
    ],
)
def test_airflow_param_errors_read_in_one_line(dagbag, conf, expected):
    """The error Airflow raises for a conf value (server side, as ``dags trigger`` and the REST
    API validate it; wrapped by ``backfill create``) becomes one line: param, value, valid range."""
    from airflow.models.backfill import InvalidBackfillConf
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["train_model"]))
    params = dag.params  # as the API server and the CLI hold them
    with pytest.raises(ValueError) as caught:
        params.deep_merge(conf).validate()
    assert describe_param_error(caught.value, "train_model") == expected
    try:  # backfill create wraps it
        raise InvalidBackfillConf(str(caught.value)) from caught.value
    except InvalidBackfillConf as wrapped:
        assert describe_param_error(wrapped, "train_model") == expected
    assert describe_param_error(ValueError("something else")) is None
