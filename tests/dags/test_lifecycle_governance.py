"""The lifecycle page's model card and audit trail sections: rendered from the template, every
value escaped, the card's numbers and the trail's actors shown (issue 17)."""

from __future__ import annotations

import json
import re

from tests.dags.test_plugin_security import _page_state, _plugin

HOSTILE = "<img src=x onerror=alert(2)>"


def _card() -> dict:
    return {
        "model": "flight_delay_xgb",
        "version": "3",
        "run_id": "run3",
        "experiment_id": "1",
        "intended_use": "P(arrival delay >= 15 min), known before scheduled departure",
        "task": "binary",
        "label": {"name": "is_delayed", "definition": HOSTILE},
        "training": {
            "as_of": "2013-03-15",
            "window": {
                "start": "2013-01-14",
                "valid_start": "2013-02-15",
                "holdout_start": "2013-03-01",
                "end": "2013-03-15",
            },
            "training_set": {"rows": 12345, "data_hash": "ab" * 32},
            "partitions": {
                "read": 8,
                "missing": [],
                "digest": "cd" * 32,
                "rows": 12345,
                "list": [
                    {"ds": f"2013-03-0{i}", "rows": 100 + i, "sha256": f"{i}" * 64} for i in range(1, 9)
                ],
            },
        },
        "feature_service": "flight_delay_v1",
        "features": ["a", "b", "c"],
        "metrics": {
            "gate_metric": "roc_auc",
            "higher_is_better": True,
            "challenger": {"roc_auc": 0.7312, "log_loss": 0.51},
            "champion_version": "2",
            "champion": {"roc_auc": 0.7201, "log_loss": 0.52},
            "margin": 0.002,
        },
        "gate": {
            "eligible": True,
            "promoted": False,
            "reason": "roc_auc 0.7312 >= champion v2 0.7201 + margin 0.002",
        },
        "behavioural_checks": [
            {"name": "range", "passed": True, "detail": "ok"},
            {"name": "direction_prev_leg_dep_delay", "passed": False, "detail": HOSTILE},
        ],
        "trigger": {
            "kind": "retrain_request",
            "reason": "feature drift: dep_hour",
            "day": "2013-03-14",
            "drifted_features": {"dep_hour": 0.4},
        },
        "known_limits": ["Trained on 2013-01-14..2013-03-01 only", HOSTILE],
        "code": {"git_commit": "abc"},
    }


def _audit() -> list[dict]:
    return [
        {
            "kind": "alias_moved",
            "alias": "champion",
            "from_version": "1",
            "to_version": "2",
            "actor": "approver:admin",
            "reason": HOSTILE,
            "at": "2026-11-30T15:00:01.123456Z",
            "context": {"dag_id": "train_model", "dag_run_id": "manual__approve"},
        },
        {
            "kind": "approval",
            "version": "3",
            "decision": "reject",
            "actor": "approver:bob",
            "reason": "reject v3",
            "at": "2026-11-30T15:00:00.000000Z",
            "context": {},
        },
    ]


def test_model_card_and_audit_trail_sections_render_escaped():
    from mlops.models.lifecycle import lifecycle_page

    plugin = _plugin()
    state = {**_page_state(), "model_card": _card(), "audit": _audit()}
    page = lifecycle_page(state, links=plugin.page_links())
    assert json.loads(json.dumps(page)) == page  # plain data only
    html = plugin.render_lifecycle(state)
    assert "<img" not in html and html.count("&lt;img src=x onerror=alert(2)&gt;") == 4

    card = re.search(r'<section id="model-card" class="mcard">(.*?)</section>', html, re.S).group(1)
    assert "<h2>Model card · v3</h2>" in html
    assert "0.7312" in card and "0.7201" in card and "roc_auc (gate)" in card and "champion v2" in card
    assert "12345 rows" in card and "8 read, 0 absent" in card and "… 2 more in model_card.json" in card
    assert "drift request of 2013-03-14: feature drift: dep_hour" in card and "drifted: dep_hour" in card
    assert '<span class="badge no">failed</span> <code>direction_prev_leg_dep_delay</code>' in card

    trail = re.search(r'<table id="audit">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr><td>(.*?)</td>", trail)
    assert rows == ["2026-11-30 15:00:01", "2026-11-30 15:00:00"]
    assert '<span class="badge champion">@champion v1 → v2</span>' in trail
    assert '<span class="badge no">approval of v3: reject</span>' in trail
    assert "<code>approver:admin</code>" in trail and "train_model/manual__approve" in trail


def test_without_card_or_trail_the_page_says_so():
    html = _plugin().render_lifecycle({**_page_state()})
    assert "No model card yet" in html and "No alias moves recorded yet" in html
    assert "No shadow traffic yet" in html


def test_shadow_traffic_section_renders_escaped():
    row = {
        "champion_version": "3",
        "challenger_version": HOSTILE,
        "pairs": 120,
        "canary_pairs": 12,
        "agreement_rate": 0.925,
        "mean_score_diff": 0.0123,
        "mean_abs_score_diff": 0.0456,
        "labelled": 100,
        "champion_roc_auc": 0.71,
        "challenger_roc_auc": None,
    }
    state = {**_page_state(), "shadow": [row], "shadow_days": ["2013-06-12", "2013-06-13"]}
    html = _plugin().render_lifecycle(state)
    table = re.search(r'<table id="shadow">.*?</table>', html, re.S).group(0)
    assert "<img" not in html and "v3 vs v&lt;img src=x onerror=alert(2)&gt;" in table
    assert "<td>120</td><td>12</td><td>92.5%</td><td>0.0123 (0.0456)</td><td>100</td>" in table
    assert "<td>0.7100 / —</td>" in table and "champion vs challenger · 2013-06-12 … 2013-06-13" in html
