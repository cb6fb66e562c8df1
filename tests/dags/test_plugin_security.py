"""The plugin serves only what the platform publishes, to users allowed to read it (issue 19).

The plugin's FastAPI app runs in-process, mounted under ``/mlops`` as the api-server mounts it,
with Airflow's real authentication and authorization: the simple auth manager, JWTs it signs,
``requires_access_dag`` against a real (migrated) Airflow metadata database. Requests are sent as
raw HTTP targets decoded once, as uvicorn decodes them, so every encoding of ``..`` reaches the
route exactly as an attacker would send it. ``tests/e2e/test_plugin_server.py`` repeats the
attacks against a real api-server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from mlops import lake, published
from mlops.config import get_settings
from tests.conftest import REPO

DS = "2013-03-05"
VALIDATION = f"validation/ds={DS}/validation.html"
DRIFT = f"drift/ds={DS}/report.html"
SECRET = "TOP-SECRET-c0ffee"
PASSWORDS = "simple_auth_manager_passwords.json.generated"
UP = "../" * 16  # more than enough to reach / from any temporary directory


def _plugin() -> Any:
    """plugins/mlops_plugin.py, imported from its file as the api-server's plugin manager does."""
    if "mlops_plugin" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mlops_plugin", REPO / "plugins" / "mlops_plugin.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["mlops_plugin"] = module
        spec.loader.exec_module(module)
    return sys.modules["mlops_plugin"]


@pytest.fixture(scope="module")
def airflow_db(tmp_path_factory: pytest.TempPathFactory):
    """A migrated Airflow metadata database (``airflow db migrate``), used by this process's ORM."""
    home = tmp_path_factory.mktemp("airflow_plugin")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        # explicit: Airflow's AIRFLOW_HOME constant is fixed at its first import in this process
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
    }
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run(
        [str(airflow), "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    from airflow import settings
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager

    def reconfigure() -> None:  # this process's ORM and JWT signer follow the environment
        settings.configure_vars()
        settings.reconfigure_orm()
        BaseAuthManager._get_token_signer.__func__.cache_clear()
        BaseAuthManager._get_token_validator.__func__.cache_clear()

    reconfigure()
    try:
        yield home
    finally:
        mp.undo()
        reconfigure()


@pytest.fixture(scope="module")
def auth(airflow_db: Path) -> dict[str, str]:
    """Bearer tokens signed by the simple auth manager: a viewer, an admin, a user with no role."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()
    return {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
        for name, role in (("viewer", "viewer"), ("admin", "admin"), ("nobody", None))
    }


@pytest.fixture
def server(auth: dict[str, str], airflow_db: Path, mlops_home: Path):
    """The plugin app mounted under /mlops, and a lake with published files and secrets around."""
    from fastapi import FastAPI

    root = FastAPI()
    root.mount("/mlops", _plugin().app)
    lake_root = lake.local_path(get_settings().lake_uri)
    for name in (VALIDATION, f"validation/ds={DS}/validation.json", DRIFT):
        path = lake_root / "reports" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<p>{name}</p>" if name.endswith(".html") else "{}")
    quarantine = lake_root / "quarantine" / "flights" / f"ds={DS}"
    quarantine.mkdir(parents=True)
    (quarantine / "flights.csv").write_text("year,month\n2013,3\n")
    (lake_root / "reports" / "drift" / "requests").mkdir(parents=True)
    (lake_root / "reports" / "drift" / "requests" / "ledger.json").write_text(SECRET)
    (lake_root / "reports" / "drift" / "history.parquet").write_text(SECRET)
    (lake_root / "secret.txt").write_text(SECRET)
    outside = mlops_home.parent / "outside"
    (outside / f"ds={DS}").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (outside / f"ds={DS}" / "report.html").write_text(SECRET)
    return {"app": root, "lake": lake_root, "outside": outside, "airflow_home": airflow_db, **auth}


def get(app: Any, target: str, token: str | None = None, cookie: bool = False) -> tuple[int, dict, bytes]:
    """GET ``target`` (a raw request target) as uvicorn hands it to the app: path decoded once."""
    raw, _, query = target.partition("?")
    headers = [(b"host", b"127.0.0.1")]
    if token and cookie:
        headers.append((b"cookie", f"_token={token}".encode()))
    elif token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw),
        "raw_path": raw.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def _traversals(server: dict) -> list[str]:
    """Request targets that try to leave the served folders (or reach unpublished files)."""
    pw = str(server["airflow_home"] / PASSWORDS)
    up1, up2, up3 = "%2e%2e/" * 16, "%252e%252e/" * 16, "%25252e%25252e/" * 16
    outside = server["outside"]
    # symlinks below the served folder, to a file and to a directory outside it
    link_file = server["lake"] / "reports" / "validation" / "ds=2013-03-06"
    link_file.mkdir(parents=True)
    (link_file / "validation.html").symlink_to(outside / "secret.txt")
    (server["lake"] / "reports" / "drift" / "ds=2013-03-07").symlink_to(outside / f"ds={DS}")
    (server["lake"] / "quarantine" / "flights" / "ds=2013-03-08").symlink_to(
        outside, target_is_directory=True
    )
    targets = []
    for folder in ("reports", "quarantine"):
        base = f"/mlops/{folder}/"
        targets += [
            base + UP + "etc/passwd",  # literal
            base + up1 + "etc/passwd",  # encoded once
            base + up2 + "etc/passwd",  # twice (the reported attack)
            base + up3 + "etc/passwd",  # three times
            base + up2 + pw.lstrip("/"),  # the simple auth manager's passwords
            base + up1.replace("/", "%2f") + "etc%2fpasswd",  # encoded slashes too
            base + "%2fetc%2fpasswd",  # absolute path
            base + "/etc/passwd",
            base + "%252fetc%252fpasswd",
            base + f"validation/ds={DS}/" + up2 + "secret.txt",
            base + f"flights/ds={DS}/%252e%252e/%252e%252e/%252e%252e/secret.txt",
            base + "..%5c..%5csecret.txt",
            base + f"validation/ds={DS}/validation.html%00.png",
        ]
    targets += [
        "/mlops/reports/validation/ds=2013-03-06/validation.html",  # symlink to a file outside
        "/mlops/reports/drift/ds=2013-03-07/report.html",  # symlinked directory
        "/mlops/quarantine/flights/ds=2013-03-08/secret.txt",
        "/mlops/reports/drift/requests/ledger.json",  # the guard's ledger: not published
        "/mlops/reports/drift/history.parquet",
        "/mlops/reports/secret.txt",
        f"/mlops/reports/validation/ds={DS}/other.html",
        f"/mlops/reports/validation/ds={DS}/VALIDATION.HTML",
        f"/mlops/reports/validation/ds={DS}//validation.html",
        f"/mlops/reports/validation/ds={DS}/validation.html/",
        "/mlops/reports/validation/ds=2013-02-30/validation.html",  # not a date
        "/mlops/reports/validation/ds=%D9%A2013-03-05/validation.html",  # a non-ASCII digit
        f"/mlops/reports/drift/ds={DS}/flights.csv",
        f"/mlops/quarantine/flights/ds={DS}/report.html",
        "/mlops/reports/" + "a/" * 300 + "validation.html",
    ]
    return targets


def test_traversal_and_unpublished_names_never_return_a_file(server: dict):
    passwords = server["airflow_home"] / PASSWORDS
    generated = [p.encode() for p in json.loads(passwords.read_text()).values()]
    hidden = [SECRET.encode(), b"root:x:0:0", passwords.read_bytes(), *generated]
    leaks, replies = [], []
    for target in _traversals(server):
        status, headers, body = get(server["app"], target, server["admin"])
        replies.append((target, headers, body))
        if status not in (400, 404) or any(s in body for s in hidden):
            leaks.append((target, status, body[:60]))
    assert not leaks, f"{len(leaks)} of {len(replies)} requests answered with a file: {leaks}"
    for target, headers, body in replies:
        assert headers.get("x-content-type-options") == "nosniff", target
        detail = json.loads(body)["detail"]
        assert "not a file the platform publishes" in detail or "symlink" in detail, (target, detail)


def test_published_files_are_served_sandboxed_with_nosniff(server: dict):
    for target, media in (
        (f"/mlops/reports/{VALIDATION}", "text/html"),
        (f"/mlops/reports/validation/ds={DS}/validation.json", "application/json"),
        (f"/mlops/quarantine/flights/ds={DS}/flights.csv", "text/csv"),
    ):
        status, headers, body = get(server["app"], target, server["viewer"])
        assert status == 200, (target, body[:300])
        assert headers["content-type"].startswith(media), headers
        assert headers["x-content-type-options"] == "nosniff"
        csp = [d.strip() for d in headers["content-security-policy"].split(";")]
        assert "sandbox" in csp and "default-src 'none'" in csp and "connect-src 'none'" in csp, csp
        assert not any("script-src" in d for d in csp), csp
    # Evidently's report runs its own inline scripts: sandboxed (opaque origin), no network.
    status, headers, body = get(server["app"], f"/mlops/reports/{DRIFT}", server["viewer"], cookie=True)
    assert status == 200 and body == f"<p>{DRIFT}</p>".encode()
    csp = [d.strip() for d in headers["content-security-policy"].split(";")]
    assert "sandbox allow-scripts" in csp and "connect-src 'none'" in csp, csp
    assert headers["x-content-type-options"] == "nosniff"


def test_a_published_name_not_written_yet_is_a_404_that_says_which_run(server: dict):
    status, _, body = get(server["app"], "/mlops/reports/drift/ds=2013-03-09/report.html", server["viewer"])
    assert status == 404
    assert json.loads(body)["detail"] == (
        "reports/drift/ds=2013-03-09/report.html has not been written: "
        "the monitor_drift run of 2013-03-09 publishes it"
    )


def test_every_route_needs_a_login_and_read_access_to_the_dag_runs(server: dict):
    routes = (
        "/mlops/lifecycle",
        "/mlops/api/state",
        f"/mlops/reports/{VALIDATION}",
        f"/mlops/reports/{DRIFT}",
    )
    answered = []
    for target in (*routes, f"/mlops/quarantine/flights/ds={DS}/flights.csv"):
        anonymous, _, _ = get(server["app"], target)
        no_role, _, body = get(server["app"], target, server["nobody"])  # logged in, no role
        if (anonymous, no_role) != (401, 403):
            answered.append((target, anonymous, no_role, body[:40]))
    assert not answered, f"answered without a login or without a role: {answered}"


def test_no_openapi_document_or_docs(server: dict):
    for target in ("/mlops/openapi.json", "/mlops/docs", "/mlops/redoc"):
        for token in (None, server["admin"]):
            status, _, body = get(server["app"], target, token)
            assert status in (401, 404), (target, status)
            assert b'"openapi"' not in body


def test_lifecycle_page_policy_allows_only_its_own_stylesheet(server: dict):
    status, headers, body = get(server["app"], "/mlops/lifecycle", server["viewer"], cookie=True)
    assert status == 200, body[:500]
    csp = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'self'", csp
    assert "script-src" not in csp and "unsafe-inline" not in csp["style-src"]
    style = re.search(rb"<style>(.*?)</style>", body, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style).digest()).decode()
    assert csp["style-src"] == f"'sha256-{digest}'"
    assert headers["x-content-type-options"] == "nosniff"
    assert b"<script" not in body
    assert b'id="requests"' in body or b"No retraining decisions yet" in body


# --- the allowlist itself, and the writers it must cover -------------------------------------------


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("reports", "validation/ds=2013-03-05/validation.html"),
        ("reports", "validation/ds=2013-03-05/validation.json"),
        ("reports", "drift/ds=2013-12-31/report.html"),
        ("reports", "drift/ds=2013-12-31/drift.json"),
        ("quarantine", "flights/ds=2013-03-05/flights.csv"),
        ("quarantine", "flights/ds=2013-03-05/validation.html"),
    ],
)
def test_published_names(folder: str, name: str):
    item = published.published(folder, name)
    assert (item.folder, item.name) == (folder, name)
    assert item.scripted == (name.startswith("drift/") and name.endswith(".html"))


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("reports", "../secret"),
        ("reports", "%2e%2e/secret"),
        ("reports", "validation/ds=2013-03-05/../../secret"),
        ("reports", "/etc/passwd"),
        ("reports", "drift/requests/ledger.json"),
        ("reports", "validation/ds=2013-3-5/validation.html"),
        ("reports", "validation/ds=2013-03-05/validation.html\n"),
        ("quarantine", "weather/ds=2013-03-05/flights.csv"),
        ("curated", "flights/ds=2013-03-05/data.parquet"),
    ],
)
def test_unpublished_names_are_refused_with_what_is_served(folder: str, name: str):
    with pytest.raises(published.NotPublished, match="serve"):
        published.published(folder, name)


def test_local_path_refuses_a_dot_dot_segment_once_decoded():
    """The second decoding that made the attack work: ``%2e%2e`` in a lake URI is ``..``."""
    assert lake.local_path("file:///tmp/my%20lake/reports/x.html") == Path("/tmp/my lake/reports/x.html")
    for uri in ("file:///tmp/lake/reports/%2e%2e/%2e%2e/etc/passwd", "file:///tmp/lake/../etc/passwd"):
        with pytest.raises(ValueError, match="'..' segment once decoded"):
            lake.local_path(uri)


def test_what_the_platform_writes_is_published_and_linked(mlops_home: Path):
    """Real writers: a validated day and a quarantined day (ingest), the drift check's paths."""
    from mlops.airflow.links import report_url
    from mlops.ingest import simulator, steps
    from mlops.monitoring import history

    s = get_settings()
    simulator.export_day(DS, s.landing_uri)
    assert steps.validate_partition(DS).success
    simulator.export_day("2013-03-06", s.landing_uri, fault="unknown_carrier")
    assert not steps.validate_partition("2013-03-06").success
    written = [
        *lake.list_uris(lake.join(s.lake_uri, "reports")),
        *lake.list_uris(lake.join(s.lake_uri, "quarantine")),
        lake.join(history.report_dir(DS, s), "report.html"),
        lake.join(history.report_dir(DS, s), "drift.json"),
    ]
    assert len(written) >= 7, written
    for uri in written:
        folder, name = report_url(uri, s.lake_uri).removeprefix("/mlops/").split("/", 1)
        assert published.published(folder, name).name == name
    for state in (history.ledger_uri(s), history.history_uri(s)):  # the monitoring's own state: not served
        folder, name = state[len(s.lake_uri) + 1 :].split("/", 1)
        with pytest.raises(published.NotPublished):
            published.published(folder, name)


# --- S3 lakes: the same allowlist on the key ------------------------------------------------------


@pytest.fixture
def s3_lake(mlops_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A moto S3 server on loopback holding a lake; the default S3 client points at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    try:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # moto accepts any key
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("MLOPS_LAKE_URI", "s3://plugin-lake/lake")
        lake.set_s3_client_factory(None)
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        client.create_bucket(Bucket="plugin-lake")
        for key, body in (
            (f"lake/reports/{VALIDATION}", b"<p>validation</p>"),
            ("lake/reports/drift/requests/ledger.json", SECRET.encode()),
            ("lake/secret.txt", SECRET.encode()),
            (f"lake/reports/validation/ds={DS}/../../../secret.txt", SECRET.encode()),
        ):
            client.put_object(Bucket="plugin-lake", Key=key, Body=body)
        yield client
    finally:
        lake.set_s3_client_factory(None)
        srv.stop()


def test_s3_lake_serves_only_published_keys(server: dict, s3_lake: Any):
    status, headers, body = get(server["app"], f"/mlops/reports/{VALIDATION}", server["viewer"])
    assert (status, body) == (200, b"<p>validation</p>")
    assert "sandbox" in headers["content-security-policy"]
    for target in (
        "/mlops/reports/drift/requests/ledger.json",
        "/mlops/reports/%252e%252e/secret.txt",
        "/mlops/reports/../secret.txt",
        f"/mlops/reports/validation/ds={DS}/../../../secret.txt",
        f"/mlops/reports/validation/ds={DS}/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    ):
        status, _, body = get(server["app"], target, server["admin"])
        assert status == 404 and SECRET.encode() not in body, (target, status, body[:200])
    status, _, body = get(server["app"], "/mlops/reports/drift/ds=2013-03-09/report.html", server["viewer"])
    assert status == 404 and b"has not been written" in body, body


# --- the lifecycle page is a template fed plain data (issue 15) ------------------------------------


def _page_state() -> dict[str, Any]:
    hostile = "<script>alert(1)</script>"

    def version(n: int, aliases: list[str], **kw: Any) -> dict[str, Any]:
        return {
            "version": str(n),
            "aliases": aliases,
            "run_id": f"run{n}",
            "experiment_id": "1",
            "created": "0",
            "metrics": {"roc_auc": 0.7 + n / 100, "pr_auc": 0.4, "log_loss": float("nan"), "brier": None},
            "as_of": f"2013-03-0{n}",
            "trigger": "backfill",
            "trigger_reason": kw.get("why"),
            "promotion": kw.get("promotion"),
            "promotion_reason": kw.get("reason"),
        }

    versions = [
        version(3, ["challenger"], promotion="rejected", reason=hostile),
        version(2, ["champion"], promotion="promoted", reason="better", why=hostile),
        version(1, ["previous"]),
    ]
    days = ("2013-03-20", "2013-04-17", "2013-06-19", "2013-07-10")
    history = [
        {
            "ds": ds,
            "drift_share": 0.1 * i,
            "prediction_drift": 0.2 * i,
            "calibration_error": 0.05,
            "roc_auc": 0.7,
            "n_drifted": i,
            "n_features": 10,
            "breached": i >= 2,
            "breaches": hostile if i >= 2 else "",
            "retrain_decision": "requested" if i == 2 else None,
            "champion_version": "2",
            "report_uri": None,
        }
        for i, ds in enumerate(days)
    ]
    requests = [
        {"ds": days[2], "decision": "requested", "reason": hostile, "drifted_features": {"dest": 0.9}},
        {"ds": days[3], "decision": "suppressed", "reason": "already decided", "drifted_features": None},
    ]
    return {
        "champion": versions[1],
        "challenger": versions[0],
        "previous": versions[2],
        "versions": versions,
        "drift_history": history,
        "retrain_requests": requests,
        "errors": [hostile],
    }


def test_lifecycle_page_is_rendered_from_its_template_with_every_value_escaped():
    from mlops.models.lifecycle import lifecycle_page

    plugin = _plugin()
    page = lifecycle_page(_page_state(), links=plugin.page_links())
    assert json.loads(json.dumps(page)) == page  # plain data only
    html = plugin.render_lifecycle(_page_state())
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for role, version in (("champion", "v2"), ("challenger", "v3"), ("previous", "v1")):
        card = re.search(rf'<section class="card {role}" data-role="{role}">(.*?)</section>', html, re.S)
        assert card and version in card.group(1) and "ROC-AUC" in card.group(1), role
    assert 'id="versions"' in html and html.count('<circle class="pt') == 4
    assert html.count('<circle class="pt breached"') == 2 and html.count('<path class="req"') == 1
    requests = re.search(r'<table id="requests">.*?</table>', html, re.S).group(0)
    assert '<span class="badge ok">requested</span>' in requests and "already decided" in requests


# --- a model's own report folder: {lake}/models/<folder>/reports (issue 16) ------------------------

AIR_DRIFT = f"drift/ds={DS}/report.html"


@pytest.fixture
def model_reports(server: dict) -> dict:
    """The air-time model's drift report and JSON where its drift check writes them, and secrets
    around: its drift ledger, a validation-shaped file, a symlink to outside."""
    from mlops import layout
    from mlops.spec.model import model_spec

    spec = model_spec("air_time")
    root = lake.local_path(layout.model_root(get_settings().lake_uri, spec.lake_folder)) / "reports"
    report = lake.local_path(layout.report_dir(get_settings().lake_uri, layout.DRIFT, DS, spec.lake_folder))
    assert report == root / "drift" / f"ds={DS}"  # where the drift check writes it
    report.mkdir(parents=True)
    (report / "report.html").write_text("<p>air time drift</p>")
    (report / "drift.json").write_text('{"drift_share": 0.1}')
    (root / "drift" / "requests").mkdir()
    (root / "drift" / "requests" / "ledger.json").write_text(SECRET)
    (root / "drift" / "history.parquet").write_text(SECRET)
    (root / "validation" / f"ds={DS}").mkdir(parents=True)
    (root / "validation" / f"ds={DS}" / "validation.html").write_text(SECRET)
    (root / "drift" / "ds=2013-03-06").symlink_to(server["outside"] / f"ds={DS}", target_is_directory=True)
    return {**server, "folder": spec.lake_folder}


def test_a_models_drift_report_is_served_from_its_own_folder(model_reports: dict):
    base = f"/mlops/models/{model_reports['folder']}/reports"
    status, headers, body = get(
        model_reports["app"], f"{base}/{AIR_DRIFT}", model_reports["viewer"], cookie=True
    )
    assert status == 200 and body == b"<p>air time drift</p>"
    csp = [d.strip() for d in headers["content-security-policy"].split(";")]
    assert "sandbox allow-scripts" in csp and "connect-src 'none'" in csp, csp
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = get(
        model_reports["app"], f"{base}/drift/ds={DS}/drift.json", model_reports["viewer"]
    )
    assert status == 200 and headers["content-type"].startswith("application/json") and b"0.1" in body
    status, _, body = get(
        model_reports["app"], f"{base}/drift/ds=2013-03-09/report.html", model_reports["viewer"]
    )
    assert status == 404 and json.loads(body)["detail"] == (
        "models/air_time/reports/drift/ds=2013-03-09/report.html has not been written: "
        "the monitor_drift_air_time run of 2013-03-09 publishes it"
    )


def test_a_models_folder_refuses_traversal_other_files_and_unknown_models(model_reports: dict):
    base = f"/mlops/models/{model_reports['folder']}/reports"
    up1, up2 = "%2e%2e/" * 16, "%252e%252e/" * 16
    targets = [
        f"{base}/{UP}secret.txt",
        f"{base}/{up1}secret.txt",
        f"{base}/{up2}secret.txt",
        f"{base}/drift/ds={DS}/{UP}secret.txt",
        f"{base}/drift/ds={DS}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        f"{base}/drift/requests/ledger.json",
        f"{base}/drift/history.parquet",
        f"{base}/validation/ds={DS}/validation.html",  # a reports/ name, but not a model's
        f"{base}/drift/ds=2013-03-06/report.html",  # symlinked directory
        f"/mlops/models/%2e%2e/reports/{AIR_DRIFT}",
        f"/mlops/models/%252e%252e/reports/{AIR_DRIFT}",
        f"/mlops/models/../reports/{AIR_DRIFT}",
        f"/mlops/models/flight_delay/reports/{AIR_DRIFT}",  # not a folder of the lake
        f"/mlops/models//reports/{AIR_DRIFT}",
        f"/mlops/models/air_time/quarantine/{AIR_DRIFT}",
    ]
    leaks = []
    for target in targets:
        status, headers, body = get(model_reports["app"], target, model_reports["admin"])
        if status not in (400, 404) or SECRET.encode() in body or b"air time drift" in body:
            leaks.append((target, status, body[:80]))
        assert headers.get("x-content-type-options") == "nosniff", target
    assert not leaks, leaks
    _, _, body = get(
        model_reports["app"], f"/mlops/models/flight_delay/reports/{AIR_DRIFT}", model_reports["admin"]
    )
    assert (
        "not a registered model's folder: the UI serves models/air_time/reports" in json.loads(body)["detail"]
    )
    _, _, body = get(
        model_reports["app"], f"{base}/validation/ds={DS}/validation.html", model_reports["admin"]
    )
    assert "a model's folder serves only its drift reports" in json.loads(body)["detail"]
    for token in (None, model_reports["nobody"]):  # a login and read access to the drift DAG's runs
        status, _, body = get(model_reports["app"], f"{base}/{AIR_DRIFT}", token)
        assert status == (401 if token is None else 403) and b"air time drift" not in body


def test_the_lifecycle_page_links_every_models_drift_report(model_reports: dict, monkeypatch):
    from mlops import layout

    plugin = _plugin()
    assert {"train_model", "monitor_drift", "train_air_time", "monitor_drift_air_time"} <= set(
        plugin.LIFECYCLE_DAGS
    )
    lake_uri = get_settings().lake_uri
    air = layout.report_dir(lake_uri, layout.DRIFT, DS, "air_time") + "/report.html"
    delay = layout.report_dir(lake_uri, layout.DRIFT, DS) + "/report.html"
    links = plugin.page_links("flight_air_time_xgb")
    assert links.report(air) == f"/mlops/models/air_time/reports/{AIR_DRIFT}"
    assert links.report(delay) == f"/mlops/reports/{AIR_DRIFT}"
    assert links.report(layout.model_root(lake_uri, "air_time") + "/predictions/x.parquet") is None
    assert links.report(layout.model_root(lake_uri, "nope") + f"/reports/{AIR_DRIFT}") is None
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://host:8080/airflow")
    assert links.report(air) == f"/airflow/mlops/models/air_time/reports/{AIR_DRIFT}"
    # The link opens the file.
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")
    status, _, body = get(model_reports["app"], links.report(air), model_reports["viewer"])
    assert status == 200 and body == b"<p>air time drift</p>"


def test_a_models_own_drift_report_is_linked_to_the_plugins_model_route(mlops_home: Path):
    """``monitor_drift_air_time``'s "Drift report" link: the report under the model's own folder
    maps to ``/mlops/models/<folder>/reports/...``; what is not under a report folder is not linked."""
    from mlops.airflow.links import report_url
    from mlops.monitoring import history

    s = get_settings()
    url = report_url(history.report_file(DS, s, "air_time"), s.lake_uri)
    assert url == f"/mlops/models/air_time/reports/drift/ds={DS}/report.html"
    for other in ("models/air_time/predictions/ds=2013-03-09/data.parquet", "models/air_time", "features/x"):
        with pytest.raises(ValueError, match="not under"):
            report_url(lake.join(s.lake_uri, other), s.lake_uri)
