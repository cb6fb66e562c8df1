"""The scale-out stack's dashboards and alert rules (deploy/): checked, evaluated, and fed real names.

* ``promtool check config`` / ``check rules`` and ``promtool test rules`` (Debian's ``prometheus``
  package, ``make deps-apt``): every alert fires on a breach and stays quiet on healthy series.
* The Grafana dashboard JSON loads, uses the provisioned datasource, and every metric its panels
  (and the rules) query is one that exists: emitted by the prediction service (its ``/metrics``
  registry rendered as the endpoint renders it), produced by the statsd-exporter mapping, a
  recording rule, or a Prometheus built-in.
* Airflow's StatsD client, configured as in docker-compose.yaml (``[metrics] statsd_on``), sends
  ``ti.finish`` and the drift check's ``mlops.drift.*`` to a UDP socket on loopback; each datagram
  goes through deploy/statsd/mapping.yml (glob semantics of statsd_exporter) to the series the
  dashboard reads.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from tests.conftest import IN_CI, REPO

DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules" / "mlops.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "rules" / "mlops.rules.test.yml"
MAPPING = DEPLOY / "statsd" / "mapping.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mlops.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "mlops.yml"
#: Series Prometheus itself provides.
BUILTINS = {"ALERTS", "ALERTS_FOR_STATE", "up"}
METRIC_NAME = re.compile(r"\b((?:mlops|airflow)_[a-z0-9_]+|mlops:[a-z0-9_:]+|ALERTS)\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if not exe:
        msg = "promtool (Debian package prometheus) is not installed; run `make deps-apt`"
        if IN_CI:
            pytest.fail(f"CI=true and {msg}")
        pytest.skip(msg)
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_promtool_checks_config_and_rules():
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 8 rules found" in rules.stdout
    config = promtool("check", "config", str(PROMETHEUS))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout


def test_promtool_rule_tests_pass_and_can_fail(tmp_path):
    ok = promtool("test", "rules", str(RULE_TESTS))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The same tests against a rule file whose error threshold is off by a factor of ten fail:
    # the tests evaluate the expressions, they do not just parse them.
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "mlops.rules.yml").write_text(
        RULES.read_text().replace("mlops:predict_error_ratio:5m > 0.05", "mlops:predict_error_ratio:5m > 0.5")
    )
    (rules_dir / "mlops.rules.test.yml").write_text(RULE_TESTS.read_text())
    broken = promtool("test", "rules", str(rules_dir / "mlops.rules.test.yml"))
    assert broken.returncode != 0 and "PredictErrorRateHigh" in broken.stdout + broken.stderr


def service_series() -> set[str]:
    """Series names the prediction service's /metrics exposes (its registry, rendered as served)."""
    from prometheus_client import generate_latest

    from mlops.serving.metrics import ServiceMetrics

    text = generate_latest(ServiceMetrics().registry).decode()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            suffixes = {
                "counter": [""],  # the text format 0.0.4 names counters with their _total
                "histogram": ["_bucket", "_sum", "_count", "_created"],
                "gauge": [""],
            }[kind]
            names |= {name + s for s in suffixes}
    return names


def exporter_series() -> set[str]:
    """Series the statsd-exporter produces with deploy/statsd/mapping.yml."""
    names = set()
    for m in yaml.safe_load(MAPPING.read_text())["mappings"]:
        if m.get("action") == "drop":
            continue
        if m.get("observer_type") == "histogram":
            names |= {m["name"] + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(m["name"])
    return names


def recorded_series() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def test_dashboard_loads_and_queries_only_series_that_exist():
    dashboard = json.loads(DASHBOARD.read_text())
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert (
        yaml.safe_load(PROVIDERS.read_text())["providers"][0]["options"]["path"]
        == "/var/lib/grafana/dashboards"
    )
    known = service_series() | exporter_series() | recorded_series() | BUILTINS
    assert "mlops_serving_model_requests_total" in known and "airflow_ti_finish_total" in known

    titles = [p["title"] for p in dashboard["panels"]]
    for topic in ("Latency", "Error rate", "Requests per alias", "Drift share", "task failures"):
        assert any(topic in t for t in titles), f"no panel on {topic}: {titles}"
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(METRIC_NAME.findall(target["expr"]))
            assert names, f"{panel['title']}: no metric in {target['expr']!r}"
            unknown = names - known
            assert not unknown, f"{panel['title']}: {sorted(unknown)} is emitted by nothing"
            used |= names
    # Each rule's expression, too.
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            unknown = set(METRIC_NAME.findall(rule["expr"])) - known
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"
    assert {"mlops_drift_share", "airflow_ti_finish_total", "mlops_serving_model_requests_total"} <= used


def test_dashboard_refuses_a_misspelt_metric():
    """The name check is not vacuous: a typo in a panel is caught."""
    known = service_series() | exporter_series() | recorded_series() | BUILTINS
    expr = "sum by (alias) (rate(mlops_serving_model_request_total[5m]))"
    assert set(METRIC_NAME.findall(expr)) - known == {"mlops_serving_model_request_total"}


STATSD_PROBE = """
import sys
from airflow.sdk.observability import stats
from airflow.sdk.observability.metrics import stats_utils
from mlops.airflow.operators.drift import _emit_metrics

stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=True)
stats.incr("ti.finish", tags={"dag_id": "batch_predict", "task_id": "score", "state": "failed"})
_emit_metrics({"drift_share": 0.62, "n_drifted": 8, "breaches": [{"message": "x"}], "roc_auc": 0.71})
"""


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "^" + r"\.".join("([^.]+)" if part == "*" else re.escape(part) for part in pattern.split(".")) + "$"
    )


def map_statsd(name: str) -> tuple[str, dict[str, str]] | None:
    """What statsd_exporter makes of ``name`` with deploy/statsd/mapping.yml (None: dropped)."""
    for m in yaml.safe_load(MAPPING.read_text())["mappings"]:
        if m.get("action") == "drop":
            return None
        found = _glob(m["match"]).match(name)
        if found:
            labels = {
                k: re.sub(r"\$(\d)", lambda g, found=found: found.group(int(g.group(1))), v)
                for k, v in (m.get("labels") or {}).items()
            }
            return m["name"], labels
    return None


def test_airflow_statsd_names_map_to_the_dashboard_series(tmp_path):
    import os

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__METRICS__STATSD_ON": "True",  # as docker-compose.yaml configures Airflow
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(sock.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", STATSD_PROBE], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        received = []
        sock.settimeout(2)
        try:
            while True:
                received.extend(sock.recv(65535).decode().splitlines())
        except TimeoutError:
            pass
    finally:
        sock.close()
    names = {line.split(":", 1)[0] for line in received}
    assert "airflow.ti.finish.batch_predict.score.failed" in names, received
    mapped = {n: map_statsd(n) for n in names}
    assert mapped["airflow.ti.finish.batch_predict.score.failed"] == (
        "airflow_ti_finish_total",
        {"dag_id": "batch_predict", "task_id": "score", "state": "failed"},
    )
    assert mapped["airflow.mlops.drift.share"] == ("mlops_drift_share", {})
    assert "airflow.mlops.drift.share:0.62|g" in received
    assert mapped["airflow.mlops.drift.breached"] == ("mlops_drift_breached", {})
    assert map_statsd("airflow.ti.finish") is None  # the tagless modern name is dropped, not mis-mapped
