"""ingest_weather is ingest_flights with the weather spec: same tasks, same operators, its own paths."""

from __future__ import annotations

from mlops.airflow.operators.gx import GXValidateOperator


def _shape(dag) -> list[tuple[str, str, list[str]]]:
    return [
        (t.task_id, type(t).__name__, sorted(t.downstream_task_ids))
        for t in sorted(dag.tasks, key=lambda t: t.task_id)
    ]


def test_the_two_ingest_dags_have_the_same_shape(dagbag):
    weather, flights = dagbag.dags["ingest_weather"], dagbag.dags["ingest_flights"]
    assert _shape(weather) == _shape(flights)
    assert [t.task_id for t in weather.topological_sort()] == ["wait_for_landing", "validate", "publish"]
    assert dict(weather.params.items()).keys() == dict(flights.params.items()).keys()


def test_each_ingest_dag_takes_its_feed(dagbag):
    for dag_id, feed in (("ingest_weather", "weather"), ("ingest_flights", "flights")):
        dag = dagbag.dags[dag_id]
        validate = dag.get_task("validate")
        assert isinstance(validate, GXValidateOperator) and validate.feed == feed
        assert f"/{feed}/ds=" in dag.get_task("wait_for_landing").uri
        assert [o.name for o in dag.get_task("publish").outlets] == [f"curated_{feed}"]


def test_features_follow_both_feeds(dagbag):
    """materialize_features runs on either curated asset (curated_flights | curated_weather)."""
    condition = dagbag.dags["materialize_features"].timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"
    assert {a.name for a in condition.objects} == {"curated_flights", "curated_weather"}
    simulator = dagbag.dags["flights_upstream_simulator"]
    assert {o.name for t in simulator.tasks for o in t.outlets} == {"flights_landing", "weather_landing"}
