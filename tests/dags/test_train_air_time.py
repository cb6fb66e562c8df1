"""train_air_time: train_model's tasks and registry operators, given the air-time model spec."""

from __future__ import annotations


def test_weekly_after_train_model_and_its_own_margin(dagbag):
    dag = dagbag.dags["train_air_time"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert dag.timetable.expression == "0 2 * * 1"
    margin = dag.params.get_param("promotion_margin")
    assert margin.value == 0.1 and "MAE" in margin.schema["title"]
    assert set(dag.params) == set(dagbag.dags["train_model"].params)  # the same form otherwise


def test_the_registry_operators_name_the_air_time_model(dagbag):
    dag = dagbag.dags["train_air_time"]
    register, gate = dag.get_task("register"), dag.get_task("gate")
    assert register.model_name == gate.model_name == "flight_air_time_xgb"
    assert type(dag.get_task("promote")).__name__ == "PromoteModelOperator"
    assert "approval" in gate.downstream_task_ids
    search = dag.get_task("score_candidate")
    assert "refit" in search.downstream_task_ids


def test_plan_is_a_training_run_of_the_air_time_spec(dagbag, mlops_home):
    from datetime import UTC, datetime

    dag = dagbag.dags["train_air_time"]
    plan = dag.get_task("plan").python_callable
    params = {name: dag.params[name] for name in dag.params}
    out = plan(params=params, dag_run=None, data_interval_end=datetime(2013, 3, 4, tzinfo=UTC))
    assert out["spec"] == "air_time" and out["as_of"] == "2013-03-04"
    assert out["params"]["promotion_margin"] == 0.1
    assert "/air_time-" in out["training_dir"]
    flight_delay = (
        dagbag.dags["train_model"]
        .get_task("plan")
        .python_callable(
            params={
                name: dagbag.dags["train_model"].params[name] for name in dagbag.dags["train_model"].params
            },
            dag_run=None,
            data_interval_end=datetime(2013, 3, 4, tzinfo=UTC),
            triggering_asset_events={},
        )
    )
    assert flight_delay["spec"] == "flight_delay" and flight_delay["training_dir"] != out["training_dir"]
