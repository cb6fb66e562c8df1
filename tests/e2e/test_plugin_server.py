"""The plugin's routes on a real api-server (``airflow api-server`` on loopback, no scheduler):
path traversal, unpublished names, logins, roles, headers and the OpenAPI document, as an attacker
would send them (raw request targets over a socket, no client-side URL normalization).

Users of the simple auth manager: ``admin`` and ``viewer``, and ``nobody``, who can log in but
has no role (the auth manager grants them nothing).
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import httpx
import pytest

from mlops import lake
from mlops.config import get_settings
from mlops.dev import embedded
from tests.dags.test_plugin_security import AIR_DRIFT, DRIFT, PASSWORDS, SECRET, UP, VALIDATION


def raw_get(base: str, target: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``target`` exactly as written (``http.client`` sends the request target unchanged)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.slow  # about a minute: db migrate and the api-server start dominate
@pytest.mark.timeout(600)
def test_plugin_routes_on_a_real_api_server(mlops_home: Path):
    settings = get_settings()
    root = lake.local_path(settings.lake_uri)
    for name in (VALIDATION, DRIFT, "drift/requests/ledger.json"):
        (root / "reports" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "reports" / name).write_text(SECRET if name.endswith(".json") else f"<p>{name}</p>")
    (root / "secret.txt").write_text(SECRET)
    air = root / "models" / "air_time" / "reports"  # the air-time model's own folder
    for name in (AIR_DRIFT, "drift/requests/ledger.json"):
        (air / name).parent.mkdir(parents=True, exist_ok=True)
        (air / name).write_text(SECRET if name.endswith(".json") else "<p>air time drift</p>")

    env = embedded.environment(settings, port=embedded.free_port())
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin,viewer:viewer,nobody:"
    embedded.init_db(env)
    svc = embedded.Services(env=env, components=("api-server",)).start()
    try:
        base = svc.url
        passwords = json.loads((Path(env["AIRFLOW_HOME"]) / PASSWORDS).read_text())
        tokens = {
            user: httpx.post(
                f"{base}/auth/token", json={"username": user, "password": passwords[user]}, timeout=60
            )
            .raise_for_status()
            .json()["access_token"]
            for user in ("admin", "viewer", "nobody")
        }
        hidden = [SECRET.encode(), b"root:x:0:0", *(p.encode() for p in passwords.values())]
        pw_file = str(Path(env["AIRFLOW_HOME"]) / PASSWORDS).lstrip("/")
        attacks = [
            f"/mlops/reports/{UP}etc/passwd",
            "/mlops/reports/" + "%2e%2e/" * 16 + "etc/passwd",
            "/mlops/reports/" + "%252e%252e/" * 16 + "etc/passwd",  # the reported attack
            "/mlops/reports/" + "%252e%252e/" * 16 + pw_file,
            "/mlops/quarantine/" + "%25252e%25252e/" * 16 + pw_file,
            "/mlops/reports/%2fetc%2fpasswd",
            "/mlops/reports/..%2f..%2fsecret.txt",
            "/mlops/reports/drift/requests/ledger.json",
            "/mlops/models/air_time/reports/" + "%252e%252e/" * 16 + "etc/passwd",
            "/mlops/models/air_time/reports/" + "%2e%2e/" * 16 + "secret.txt",
            "/mlops/models/%2e%2e/reports/" + "%2e%2e/" * 16 + "etc/passwd",
            "/mlops/models/air_time/reports/drift/requests/ledger.json",
        ]
        replies = {target: raw_get(base, target, tokens["admin"]) for target in attacks}
        leaks = [
            (target, status, body[:60])
            for target, (status, _, body) in replies.items()
            if status not in (400, 404) or any(h in body for h in hidden)
        ]
        assert not leaks, f"{len(leaks)} of {len(attacks)} attacks answered with a file: {leaks}"
        for target, (_, headers, _) in replies.items():
            assert headers.get("x-content-type-options") == "nosniff", (target, headers)

        # The published report: a viewer reads it, sandboxed; no login is a 401, no role a 403.
        status, headers, body = raw_get(base, f"/mlops/reports/{DRIFT}", tokens["viewer"])
        assert (status, body) == (200, f"<p>{DRIFT}</p>".encode())
        assert headers["content-security-policy"].startswith("sandbox allow-scripts;")
        assert headers["x-content-type-options"] == "nosniff"
        status, headers, body = raw_get(base, f"/mlops/models/air_time/reports/{AIR_DRIFT}", tokens["viewer"])
        assert (status, body) == (200, b"<p>air time drift</p>")
        assert headers["content-security-policy"].startswith("sandbox allow-scripts;")
        cookie = httpx.get(  # the UI's session cookie works as the bearer token does
            f"{base}/mlops/reports/{VALIDATION}", cookies={"_token": tokens["viewer"]}, timeout=60
        )
        assert cookie.status_code == 200 and cookie.headers["content-security-policy"].startswith("sandbox;")
        model_report = f"/mlops/models/air_time/reports/{AIR_DRIFT}"
        for target in ("/mlops/lifecycle", "/mlops/api/state", f"/mlops/reports/{VALIDATION}", model_report):
            assert raw_get(base, target)[0] == 401, target
            status, _, body = raw_get(base, target, tokens["nobody"])
            assert status == 403 and b"<p>" not in body, (target, status, body[:200])

        # No OpenAPI document or docs, logged in or not.
        for target in ("/mlops/openapi.json", "/mlops/docs"):
            for token in (None, tokens["admin"]):
                status, _, body = raw_get(base, target, token)
                assert status in (401, 404) and b'"openapi"' not in body, (target, status)

        # The lifecycle page: its own stylesheet only, framed by the Airflow UI only.
        status, headers, body = raw_get(base, "/mlops/lifecycle", tokens["viewer"])
        assert status == 200 and b"<h1>ML lifecycle" in body, body[:300]
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy, policy
    finally:
        svc.stop()
