"""The gate in two steps, the approval and the audit trail, against a real MLflow (SQLite) home.

decide moves nothing; apply moves under the lock only if the champion is the one the gate saw;
an approval is recorded with its approver, a rejection leaves the champion untouched; every move
(register, gate, approver, rollback, manual) is in ``mlops audit``; a model card is logged per
version and reads back.
"""

from __future__ import annotations

import json

import pytest

from mlops.config import CHALLENGER, CHAMPION, PREVIOUS
from mlops.models import audit, card, registry
from mlops.training.split import split
from tests.conftest import use_home
from tests.integration._registry_helpers import STRONG, WEAK, frame, train_and_register

pytestmark = pytest.mark.slow  # six small models trained and registered: ~280 s at load 13


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("mlops"))
        for var in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TASK_ID"):
            mp.delenv(var, raising=False)
        yield h


@pytest.fixture(scope="module")
def models(home):
    data = frame()
    weak, _ = train_and_register(data, **WEAK)
    strong, result = train_and_register(data, **STRONG)
    _, holdout = split(data, result.window)
    return {"data": data, "weak": weak, "strong": strong, "holdout": holdout}


def moves(trail=None):
    return [
        (e.alias, e.from_version, e.to_version, e.actor)
        for e in (trail or audit.read())
        if e.kind == audit.ALIAS_MOVED
    ]


def test_decide_moves_nothing_and_apply_moves_under_the_lock(models):
    weak, strong, holdout = models["weak"], models["strong"], models["holdout"]
    assert moves() == [("challenger", None, weak, "register"), ("challenger", weak, strong, "register")]

    first = registry.promote(weak, holdout, margin=0.002)
    assert first.promoted and registry.alias_version(CHAMPION) == weak

    decided = registry.decide(strong, holdout, margin=0.002)
    assert decided.eligible and not decided.promoted, decided.reason
    assert registry.alias_version(CHAMPION) == weak, "decide moved an alias"
    assert registry.version_info(strong).tags["promotion.decision"] == "awaiting approval"

    applied = registry.apply(decided.as_dict(), actor="gate")
    assert applied.promoted and applied.champion_after == strong and applied.previous == weak
    assert (registry.alias_version(CHAMPION), registry.alias_version(PREVIOUS)) == (strong, weak)
    assert moves()[-3:] == [
        ("champion", None, weak, "gate"),
        ("previous", None, weak, "gate"),
        ("champion", weak, strong, "gate"),
    ]
    again = registry.apply(decided.as_dict(), actor="gate")  # a task retry: nothing moves again
    assert again.promoted and len(moves()) == 5


def test_apply_refuses_when_the_champion_changed_since_the_gate(models):
    data, holdout = models["data"], models["holdout"]
    challenger, _ = train_and_register(data, n_candidates=1, n_estimators=60)
    decided = registry.decide(challenger, holdout, margin=-1.0)  # eligible whatever the scores
    assert decided.eligible and decided.champion_before == models["strong"]
    # Meanwhile a person rolls back: the champion is no longer the one the gate compared with.
    registry.rollback(actor="cli:ops", reason="test: the champion changes under a waiting approval")
    assert registry.alias_version(CHAMPION) == models["weak"]
    applied = registry.apply(decided, actor="approver:alice")
    assert not applied.promoted and "champion changed from v" in applied.reason, applied.reason
    assert registry.alias_version(CHAMPION) == models["weak"]
    registry.rollback(actor="cli:ops", reason="test: back to the strong model")
    assert registry.alias_version(CHAMPION) == models["strong"]


def test_approval_and_rejection_are_recorded_with_the_approver(models):
    data, holdout = models["data"], models["holdout"]
    champion = registry.alias_version(CHAMPION)

    rejected_version, _ = train_and_register(data, n_candidates=1, n_estimators=70)
    decided = registry.decide(rejected_version, holdout, margin=-1.0)
    out = registry.resolve_approval(decided, approved=False, actor="approver:bob", comment="not on a Friday")
    assert not out.promoted and out.reason.startswith("rejected by approver:bob: not on a Friday")
    assert registry.alias_version(CHAMPION) == champion, "a rejection moved the champion"
    assert registry.version_info(rejected_version).tags["promotion.decision"] == "rejected"

    approved_version, _ = train_and_register(data, n_candidates=1, n_estimators=75)
    decided = registry.decide(approved_version, holdout, margin=-1.0)
    out = registry.resolve_approval(decided, approved=True, actor="approver:alice", comment="ok")
    assert out.promoted and registry.alias_version(CHAMPION) == approved_version
    assert registry.alias_version(PREVIOUS) == champion

    trail = audit.read()
    answers = [(e.version, e.decision, e.actor) for e in trail if e.kind == audit.APPROVAL]
    assert answers == [
        (rejected_version, "reject", "approver:bob"),
        (approved_version, "promote", "approver:alice"),
    ]
    assert moves(trail)[-2:] == [
        ("previous", models["weak"], champion, "approver:alice"),
        ("champion", champion, approved_version, "approver:alice"),
    ]
    assert all(e.run_id for e in trail), "every event names the MLflow run of its version"

    not_eligible = registry.decide(rejected_version, holdout, margin=0.5)
    with pytest.raises(ValueError, match="nothing to approve"):
        registry.resolve_approval(not_eligible, approved=True, actor="approver:alice")


def test_a_retried_answer_is_recorded_once(models, monkeypatch):
    """The promote task retried in the same Airflow run records its approval answer once."""
    version, _ = train_and_register(models["data"], n_candidates=1, n_estimators=65)
    decided = registry.decide(version, models["holdout"], margin=-1.0)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__retry")
    for _ in range(2):
        registry.resolve_approval(decided, approved=False, actor="approver:carol")
    answers = [e for e in audit.read() if e.kind == audit.APPROVAL and e.version == version]
    assert len(answers) == 1 and answers[0].context["dag_run_id"] == "manual__retry"


def test_move_alias_refuses_bad_input_and_records_manual_moves(models):
    with pytest.raises(ValueError, match="has no version 999"):
        registry.move_alias("flight_delay_xgb", CHALLENGER, "999", actor="cli:me", reason="typo")
    with pytest.raises(ValueError, match="audit actor 'me'"):
        registry.move_alias("flight_delay_xgb", CHALLENGER, models["weak"], actor="me", reason="x")
    with pytest.raises(ValueError, match="a reason is required"):
        registry.move_alias("flight_delay_xgb", CHALLENGER, models["weak"], actor="cli:me", reason=" ")
    before = len(audit.read())
    event = registry.move_alias(
        "flight_delay_xgb", CHALLENGER, models["weak"], actor="cli:me", reason="re-test"
    )
    assert event.alias == "challenger" and event.to_version == models["weak"]
    assert (
        registry.move_alias("flight_delay_xgb", CHALLENGER, models["weak"], actor="cli:me", reason="x")
        is None
    )
    assert len(audit.read()) == before + 1


def test_a_move_whose_event_cannot_be_written_is_put_back(models, home):
    """No unrecorded move: when the audit trail cannot be written, the alias goes back."""
    trail_dir = home / "lake" / "audit" / "flight_delay_xgb"
    before = registry.alias_version(CHALLENGER)
    target = models["strong"] if before != models["strong"] else models["weak"]
    aside = trail_dir.with_name("aside")
    trail_dir.rename(aside)
    trail_dir.write_text("a file where the trail's folder should be")  # every write there fails
    try:
        with pytest.raises(Exception, match="audit/flight_delay_xgb"):
            registry.move_alias("flight_delay_xgb", CHALLENGER, target, actor="cli:me", reason="blocked")
    finally:
        trail_dir.unlink()
        aside.rename(trail_dir)
    assert registry.alias_version(CHALLENGER) == before


def test_mlops_audit_prints_the_trail(models, capsys):
    from mlops.cli import main

    assert main(["audit"]) == 0
    out = capsys.readouterr().out
    assert "@champion" in out and "approver:alice" in out and "cli:ops" in out and "rollback from" in out
    assert main(["audit", "--json", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["model"] == "flight_delay_xgb" for line in lines)
    assert main(["audit", "--model", "flight_air_time_xgb"]) == 0
    assert (
        "no alias moves recorded for flight_air_time_xgb (trails: flight_delay_xgb)"
        in capsys.readouterr().out
    )
    assert main(["audit", "--model", "../etc"]) == 1
    assert "model name '../etc'" in capsys.readouterr().err


def test_the_model_card_is_logged_and_reads_back(models):
    version = registry.alias_version(CHAMPION)
    decided = registry.decide(models["weak"], models["holdout"], margin=0.002)
    built = card.build(models["weak"], decided.as_dict())
    markdown = card.log(built)
    assert markdown.startswith(f"# Model card: flight_delay_xgb v{models['weak']}")
    for needle in (
        "**Intended use.** P(arrival delay >= 15 min)",
        "`is_delayed`: 1 when the flight arrived 15 or more minutes late",
        f"champion v{version}",
        "| roc_auc (gate) |",
        "## Training data",
        "sha256 `",
        "feature service `flight_delay_v1`",
        "## Behavioural checks",
        "## Why this run",
        "## Known limits",
    ):
        assert needle in markdown, needle
    loaded = card.load(models["weak"])
    assert loaded["version"] == models["weak"] and loaded["metrics"]["champion_version"] == version
    assert loaded["metrics"]["champion"]["roc_auc"] == pytest.approx(decided.champion_metrics["roc_auc"])
    parts = loaded["training"]["partitions"]
    assert parts["read"] == len(parts["list"]) > 0 and all(len(p["sha256"]) == 64 for p in parts["list"])
    assert loaded["trigger"]["kind"] in {"manual", "airflow"}
    assert card.load(models["strong"]) is None or card.load(models["strong"])["version"] == models["strong"]
