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
    assert "<h3>Model card · v3</h3>" in html
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


def _air_time_state() -> dict:
    """One air-time model's state, as lifecycle_state(spec="air_time").to_dict() gives it."""
    version = {
        "version": "1",
        "aliases": ["champion"],
        "run_id": "r1",
        "experiment_id": "2",
        "created": "0",
        "metrics": {"mae": 9.87, "rmse": 13.2, "r2": 0.97},
        "as_of": "2013-03-04",
        "trigger": "schedule",
        "trigger_reason": None,
        "promotion": "promoted",
        "promotion_reason": HOSTILE,
        "left_out": {"weather": "2013-02-12 (quarantined)"},
    }
    return {
        "spec": "air_time",
        "model_name": "flight_air_time_xgb",
        "task": "regression",
        "gate_metric": "mae",
        "higher_is_better": False,
        "metric_keys": ["mae", "rmse", "r2"],
        "champion": version,
        "challenger": None,
        "previous": None,
        "versions": [version],
        "drift_history": [],
        "retrain_requests": [],
        "errors": [],
    }


def test_both_models_and_the_feeds_render_escaped_each_with_its_gate():
    from mlops.models.lifecycle import platform_page

    feeds = [
        {
            "feed": "flights",
            "curated": ["2013-02-11", "2013-02-12"],
            "quarantined": [],
            "still_quarantined": [],
        },
        {
            "feed": HOSTILE,
            "curated": ["2013-02-11", "2013-02-13"],
            "quarantined": ["2013-02-12", "2013-02-13"],
            "still_quarantined": ["2013-02-12"],
        },
    ]
    state = {"models": [_page_state(), _air_time_state()], "feeds": feeds}
    plugin = _plugin()
    page = platform_page(state, links=lambda m: plugin.page_links(m.get("model_name")))
    assert json.loads(json.dumps(page)) == page
    assert [m["anchor"] for m in page["models"]] == ["", "-air_time"]
    html = plugin.render_lifecycle(state)
    assert "<img" not in html and "<script" not in html
    delay, air_time = html.split('<section class="model" id="model-air_time" data-spec="air_time">')
    assert 'id="versions"' in delay and "ROC-AUC (gate)" in delay and "higher is better" in delay
    assert "MAE on the holdout, lower is better" in air_time and '<th class="num">MAE (gate)</th>' in air_time
    assert 'id="versions-air_time"' in air_time and "9.870" in air_time and "ROC-AUC" not in air_time
    assert "#/models/flight_air_time_xgb" in air_time and "#/models/flight_delay_xgb" in delay
    card = re.search(r'data-role="champion-air_time">(.*?)</section>', air_time, re.S).group(1)
    assert "left out" in card and "weather: 2013-02-12 (quarantined)" in card
    table = re.search(r'<table id="feed-days">.*?</table>', html, re.S).group(0)
    assert '<span class="badge no">2013-02-12</span>' in table and "&lt;img src=x" in table
    rows = re.findall(r"<tr data-feed=.*?</tr>", table)
    assert '<td class="num">2</td><td>2013-02-11 … 2013-02-13</td><td class="num">2</td>' in rows[1]
    assert "2013-02-13" in rows[1].split("</td>")[-2]  # quarantined, since fixed


def test_platform_state_reads_every_spec_from_mlflow_and_every_feed_from_the_lake(mlops_home):
    """Real MLflow (embedded) and a real lake folder: the air-time model's champion with its gate
    metric and the weather day its run left out; the weather feed's curated and quarantined days."""

    from mlops import lake, layout
    from mlops.config import get_settings
    from mlops.models import tracking
    from mlops.models.lifecycle import lifecycle_summary, platform_state
    from mlops.spec.feed import feed_spec

    settings = get_settings()
    weather = feed_spec("weather")
    for ds in ("2013-02-11", "2013-02-13"):
        lake.write_bytes(weather.curated_file(settings.lake_uri, ds), b"x")
    lake.write_bytes(
        lake.join(layout.quarantine_dir(settings.lake_uri, "2013-02-12", "weather"), "weather.csv"), b"x"
    )

    client = tracking.client(settings)  # tracking and registry on this home
    experiment = client.create_experiment("lifecycle-air-time-test")
    run = client.create_run(experiment, tags={"mlops.weather.missing_days": "2013-02-12 (quarantined)"})
    client.log_metric(run.info.run_id, "mae", 9.5)
    client.log_metric(run.info.run_id, "roc_auc", 0.5)  # not the regressor's: not shown
    client.set_terminated(run.info.run_id)
    client.create_registered_model("flight_air_time_xgb")
    mv = client.create_model_version("flight_air_time_xgb", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("flight_air_time_xgb", "champion", mv.version)

    state = platform_state(settings)
    by_spec = {m.spec: m for m in state.models}
    assert set(by_spec) == {"flight_delay", "air_time"}
    air_time, delay = by_spec["air_time"], by_spec["flight_delay"]
    assert delay.versions == [] and delay.champion is None
    assert (air_time.gate_metric, air_time.higher_is_better) == ("mae", False)
    assert air_time.champion.version == "1" and air_time.champion.metrics == {"mae": 9.5}
    assert air_time.champion.left_out == {"weather": "2013-02-12 (quarantined)"}
    feeds = {f["feed"]: f for f in state.feeds}
    assert feeds["weather"]["curated"] == ["2013-02-11", "2013-02-13"]
    assert feeds["weather"]["still_quarantined"] == ["2013-02-12"]
    assert feeds["flights"]["curated"] == [] and "error" not in feeds["flights"]
    lines = lifecycle_summary(settings)
    assert "feed weather: 2 day(s) curated, 1 quarantined (still quarantined: 2013-02-12)" in lines
    assert any(
        line.startswith("model flight_air_time_xgb (spec air_time, gate mae, lower is better)")
        for line in lines
    )
    assert any("@champion" in line and "mae=9.500" in line and "left out weather" in line for line in lines)


def test_the_page_reads_the_profiles_registry_whatever_mlflow_registry_uri_says(mlops_home, tmp_path):
    """The api-server renders the page and ``mlops demo`` its summary: an ``MLFLOW_REGISTRY_URI`` in
    their environment (a user's shell; MLflow's ``set_registry_uri`` writes it for subprocesses)
    must not point them at another registry than the one the training tasks write (the profile's
    store: ``mlops.models.tracking.client``). The page showed another home's versions so."""
    import json
    import os
    import subprocess
    import sys

    from mlops.config import get_settings
    from mlops.models import tracking

    settings = get_settings()
    client = tracking.client(settings)
    run = client.create_run(client.create_experiment("lifecycle-registry-uri"))
    client.log_metric(run.info.run_id, "mae", 7.5)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("flight_air_time_xgb")
    mv = client.create_model_version("flight_air_time_xgb", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("flight_air_time_xgb", "champion", mv.version)
    code = (
        "import json; from datetime import date\n"
        "from mlops.models.lifecycle import platform_state\n"
        "from mlops.dev.demo import model_lines\n"
        "state = platform_state()\n"
        "print('OUT ' + json.dumps({'champions': {m.spec: m.champion and m.champion.version "
        "for m in state.models}, 'lines': model_lines('air_time', date(2013, 6, 1), date(2013, 6, 30))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_REGISTRY_URI"] = f"sqlite:///{tmp_path / 'another-registry.db'}"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("OUT ", 1)[1])
    assert out["champions"] == {"flight_delay": None, "air_time": "1"}
    assert any(line.strip().startswith("v1 @champion") and "mae=7.500" in line for line in out["lines"])
