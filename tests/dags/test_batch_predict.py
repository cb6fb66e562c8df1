"""batch_predict's wiring: daily and backfillable, the params form, the order of its tasks, the
sensor on the day's feature tables, and the flight_predictions outlet."""

from __future__ import annotations


def test_daily_backfillable_and_ends_with_the_replayed_year(dagbag):
    from mlops.airflow.defaults import END_DATE

    dag = dagbag.dags["batch_predict"]
    t = dag.timetable
    expression = (
        getattr(t, "summary", None) or getattr(t, "expression", None) or getattr(t, "_expression", None)
    )
    assert expression in ("@daily", "0 0 * * *"), t
    assert dag.end_date == END_DATE
    assert not dag.catchup
    assert dag.max_active_runs >= 2


def test_params_form():
    from mlops.airflow.params import BATCH_PARAMS

    assert set(BATCH_PARAMS) == {"ds", "end_ds", "model_version", "threshold"}
    assert BATCH_PARAMS["end_ds"].value is None
    assert BATCH_PARAMS["model_version"].value is None and BATCH_PARAMS["threshold"].value == 0.5
    for name, param in BATCH_PARAMS.items():
        assert param.schema.get("title") and param.description, name


def test_tasks_in_order_and_the_outlet(dagbag):
    dag = dagbag.dags["batch_predict"]
    order = ["wait_for_features", "resolve_model", "score"]
    assert {t.task_id for t in dag.tasks} == set(order)
    for up, down in zip(order, order[1:], strict=False):
        assert up in dag.get_task(down).upstream_task_ids, (up, down)
    score = dag.get_task("score")
    assert [a.name for a in score.outlets] == ["flight_predictions"]
    # Scoring reads point-in-time features: it waits for the day's last feature table.
    from mlops.features.compute import DAILY_VIEWS

    sensor = dag.get_task("wait_for_features")
    assert f"/features/{DAILY_VIEWS[-1]}/ds=" in sensor.uri
    assert getattr(sensor, "deferrable", True)


def test_a_run_scores_its_day_or_the_range_to_end_ds():
    import pytest

    from mlops.airflow.params import MAX_SCORE_DAYS, last_scoring_day, scoring_days

    assert scoring_days({"ds": None, "end_ds": None}, "2013-06-03") == ["2013-06-03"]
    week = scoring_days({"end_ds": "2013-06-09"}, "2013-06-03")
    assert week[0] == "2013-06-03" and week[-1] == "2013-06-09" and len(week) == 7
    assert scoring_days({"ds": "2013-06-30", "end_ds": "2013-07-01"}, "2013-06-03") == [
        "2013-06-30",
        "2013-07-01",
    ]
    assert last_scoring_day({"end_ds": "2013-06-09"}, "2013-06-03") == "2013-06-09"
    with pytest.raises(
        ValueError, match=r"end_ds=2013-06-01 is before the first day to score \(2013-06-03\)"
    ):
        scoring_days({"end_ds": "2013-06-01"}, "2013-06-03")
    with pytest.raises(ValueError, match=rf"one run scores at most {MAX_SCORE_DAYS}: split"):
        scoring_days({"end_ds": "2013-12-31"}, "2013-01-01")
    with pytest.raises(ValueError, match="end_ds='2013-02-30' is not a YYYY-MM-DD date"):
        scoring_days({"end_ds": "2013-02-30"}, "2013-02-01")


def test_the_sensor_waits_for_the_last_day_of_the_range(dagbag):
    sensor = dagbag.dags["batch_predict"].get_task("wait_for_features")
    assert "mlops_last_scoring_day(params, ds, dag.params)" in sensor.uri  # dag.params: unknown keys refused
