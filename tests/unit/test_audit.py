"""mlops.models.audit: one object per event in the lake, one reader, actors checked; and the rule
that registry.move_alias is the only writer of an alias."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from mlops import layout
from mlops.config import get_settings
from mlops.models import audit


@pytest.fixture
def settings(tmp_path):
    return get_settings({"MLOPS_HOME": str(tmp_path)})


def test_events_are_written_one_object_each_and_read_back_in_order(settings, tmp_path):
    first = audit.record(
        audit.ALIAS_MOVED,
        actor="gate",
        reason="roc_auc 0.71 >= champion v1 0.70 + margin 0.002",
        alias="champion",
        from_version="1",
        to_version="2",
        run_id="abc",
        settings=settings,
    )
    second = audit.record(
        audit.APPROVAL,
        actor="approver:alice",
        reason="looks fine",
        version="3",
        decision="promote",
        settings=settings,
    )
    files = sorted((tmp_path / "lake" / "audit" / "flight_delay_xgb").iterdir())
    assert len(files) == 2 and all(f.suffix == ".json" for f in files)
    assert json.loads(files[0].read_text())["to_version"] == "2"
    events = audit.read(settings=settings)
    assert events == [first, second]
    assert events[0].from_version == "1" and events[0].actor == "gate" and events[0].run_id == "abc"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", events[0].at)
    assert audit.read(settings=settings, limit=1) == [second]
    assert audit.models(settings) == ["flight_delay_xgb"]
    text = audit.format_trail(events)
    assert "@champion" in text and "v1 -> v2" in text and "approver:alice" in text and "promote" in text


def test_the_trail_survives_a_new_process_view(settings):
    """Durable: what one Settings wrote, another (a restarted process) reads from the lake."""
    audit.record(
        audit.ALIAS_MOVED,
        actor="register",
        reason="new",
        alias="challenger",
        to_version="1",
        settings=settings,
    )
    again = get_settings({"MLOPS_HOME": str(settings.home)})
    assert [e.to_version for e in audit.read(settings=again)] == ["1"]


def test_concurrent_writers_never_lose_an_event(settings):
    def write(i: int) -> None:
        for j in range(10):
            audit.record(
                audit.ALIAS_MOVED,
                actor="cli:t",
                reason=f"writer {i} event {j}",
                alias="challenger",
                to_version=str(i * 100 + j),
                settings=settings,
            )

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({e.id for e in audit.read(settings=settings)}) == 60


@pytest.mark.parametrize(
    "actor", ["", "someone", "approver", "approver:", "gate:bob", "cli: x", "APPROVER:a"]
)
def test_bad_actors_are_refused_with_the_accepted_forms(actor, settings):
    with pytest.raises(ValueError, match=r"approver:<name>, cli:<user>"):
        audit.record(
            audit.ALIAS_MOVED, actor=actor, reason="x", alias="champion", to_version="1", settings=settings
        )


@pytest.mark.parametrize(
    "actor", ["gate", "register", "rollback-guard", "timeout", "approver:alice", "cli:bob"]
)
def test_good_actors(actor):
    assert audit.check_actor(actor) == actor


def test_an_event_needs_a_reason_and_an_alias_move_its_target(settings):
    with pytest.raises(ValueError, match="a reason is required"):
        audit.record(
            audit.ALIAS_MOVED, actor="gate", reason="  ", alias="champion", to_version="1", settings=settings
        )
    with pytest.raises(ValueError, match="needs the alias and the version"):
        audit.record(audit.ALIAS_MOVED, actor="gate", reason="x", settings=settings)
    with pytest.raises(ValueError, match="kind 'moved'"):
        audit.record("moved", actor="gate", reason="x", settings=settings)


def test_airflow_task_context_is_attached(settings, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "train_model")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
    e = audit.record(
        audit.ALIAS_MOVED, actor="gate", reason="x", alias="champion", to_version="1", settings=settings
    )
    assert e.context == {"dag_id": "train_model", "dag_run_id": "manual__1"}


def test_a_corrupt_event_is_named(settings, tmp_path):
    audit.record(
        audit.ALIAS_MOVED, actor="gate", reason="x", alias="champion", to_version="1", settings=settings
    )
    bad = tmp_path / "lake" / "audit" / "flight_delay_xgb" / "99999999999999999999-bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="99999999999999999999-bad.json is not a valid event"):
        audit.read(settings=settings)


def test_audit_dir_layout():
    assert layout.audit_dir("{lake}", "flight_delay_xgb") == "{lake}/audit/flight_delay_xgb"
    with pytest.raises(ValueError, match="registered model name"):
        layout.audit_dir("{lake}", "../x")


def test_only_move_alias_sets_an_alias():
    """Every alias write goes through registry.move_alias (moves under the lock, and records)."""
    root = Path(__file__).resolve().parents[2] / "include" / "mlops"
    writers = {
        str(p.relative_to(root)): p.read_text().count("set_registered_model_alias(")
        for p in root.rglob("*.py")
        if "set_registered_model_alias(" in p.read_text()
    }
    assert writers == {"models/registry.py": 2}, writers  # the move, and putting it back if unrecorded
    source = (root / "models" / "registry.py").read_text()
    body = source[source.index("def move_alias(") : source.index("def _record(")]
    assert body.count("set_registered_model_alias(") == 2
