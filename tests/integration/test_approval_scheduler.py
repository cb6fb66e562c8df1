"""The approval gate of ``train_model`` through the real scheduler (embedded Airflow), answered
over the REST API as a person's client would (``dag.test()`` cannot answer a human-in-the-loop task).

Two runs with ``require_approval`` on, one after the other, on the same data and params (so the
second challenger equals the first on the holdout and, at margin 0, is eligible):

1. the first waits in ``approval`` (Required Actions) with the model card as its body, and nothing
   has moved ``@champion``; it is approved over ``PATCH .../hitlDetails``: the champion moves and
   the audit trail names ``approver:admin``;
2. the second waits too and is rejected: the champion is untouched, the version is ``rejected``
   and the trail records the rejection.

With Chromium installed, the Required Actions view with the first run waiting is saved as
``required-actions.png`` in ``$MLOPS_UI_SCREENSHOTS`` (default: the test's tmp dir).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import use_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

AS_OF = "2013-02-11"
CONF = {
    "window_days": 14,
    "holdout_days": 3,
    "n_candidates": 1,
    "n_estimators": 30,
    "max_depth": 4,
    "as_of": AS_OF,
    "promotion_margin": 0.0,
    "require_approval": True,
}
HITL = "/dags/train_model/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from tests.integration.test_train_scheduler import seed_lake

    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("mlops"))
        mp.delenv("MLOPS_REQUIRE_APPROVAL", raising=False)
        from mlops.config import get_settings

        seed_lake(get_settings())
        yield h


def trigger(api, run_id: str, logical_date: str) -> None:
    """A manual run (its own logical date: one run per date; the data is the conf's ``as_of``)."""
    resp = api.post(
        "/dags/train_model/dagRuns",
        json={"dag_run_id": run_id, "logical_date": f"{logical_date}T00:00:00Z", "conf": CONF},
    )
    assert resp.status_code < 300, resp.text


def task_state(api, run_id: str, task_id: str) -> str | None:
    resp = api.get(f"/dags/train_model/dagRuns/{run_id}/taskInstances/{task_id}")
    return resp.json().get("state") if resp.status_code == 200 else None


def wait_for_approval(api, svc, run_id: str, timeout: float = 1800) -> dict:
    """Wait until ``approval`` of ``run_id`` waits for input; returns its HITL detail."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        svc.check_alive()
        state = task_state(api, run_id, "approval")
        if state == "awaiting_input":
            return api.get(HITL.format(run_id=run_id)).raise_for_status().json()
        run = api.get(f"/dags/train_model/dagRuns/{run_id}").json()
        assert run.get("state") != "failed", f"{run_id} failed before the approval: {run}"
        time.sleep(3)
    raise TimeoutError(f"{run_id}: approval not waiting after {timeout}s (state {state})")


def wait_for_run(api, svc, run_id: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.check_alive()
        state = api.get(f"/dags/train_model/dagRuns/{run_id}").json().get("state")
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    raise TimeoutError(f"{run_id} not finished after {timeout}s")


def answer(api, run_id: str, option: str) -> dict:
    resp = api.patch(HITL.format(run_id=run_id), json={"chosen_options": [option]})
    assert resp.status_code == 200, resp.text
    return resp.json()


def screenshot(svc, page: str, text: str, path: Path) -> Path | None:
    """``page`` of the Airflow UI in headless Chromium once ``text`` shows (None without Chromium)."""
    from tests.e2e.test_ui_browser import CHROMEDRIVER, CHROMIUM, WAIT, _browser, _password

    if not all(Path(p).exists() for p in (CHROMIUM, CHROMEDRIVER)):
        return None
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        wait = WebDriverWait(driver, WAIT)
        driver.get(f"{svc.url}/")
        wait.until(EC.url_contains("/auth/login"))
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[name=username]"))).send_keys("admin")
        driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(_password(svc.env))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        driver.get(f"{svc.url}{page}")
        wait.until(EC.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{text}')]")))
        time.sleep(2)  # let the table settle
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
        return path
    finally:
        driver.quit()


def test_a_promotion_waits_for_approval_then_is_approved_and_another_rejected(home, tmp_path):
    from mlops.config import CHAMPION, get_settings
    from mlops.dev import embedded
    from mlops.models import audit, registry

    settings = get_settings()
    shots = Path(os.environ.get("MLOPS_UI_SCREENSHOTS") or tmp_path)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with embedded.running(settings) as svc:
        embedded.reserialize(svc.env)
        embedded.unpause(["train_model"], svc.env)
        api = svc.api()

        # -- 1. approve ---------------------------------------------------------------------------
        trigger(api, "manual__approve", AS_OF)
        detail = wait_for_approval(api, svc, "manual__approve")
        timings["first_waiting_s"] = time.monotonic() - t0
        first = registry.alias_version("challenger", settings)
        assert detail["subject"] == f"Promote flight_delay_xgb v{first} to @champion (no champion yet)?"
        assert detail["options"] == ["promote", "reject"] and detail["defaults"] == ["reject"]
        assert detail["body"].startswith(f"# Model card: flight_delay_xgb v{first}"), detail["body"][:200]
        assert "## Training data" in detail["body"] and "no champion yet" in detail["body"]
        assert registry.alias_version(CHAMPION, settings) is None, "the champion moved before the approval"
        assert [e.alias for e in audit.read(settings=settings)] == ["challenger"]
        shot = screenshot(
            svc, "/required_actions", "Promote flight_delay_xgb", shots / "required-actions.png"
        )
        print(f"\nRequired Actions screenshot: {shot}")

        answered = answer(api, "manual__approve", "promote")
        assert answered["responded_by"]["name"] == "admin"
        assert wait_for_run(api, svc, "manual__approve") == "success"
        timings["first_done_s"] = time.monotonic() - t0
        assert registry.alias_version(CHAMPION, settings) == first
        assert task_state(api, "manual__approve", "publish_champion") == "success"

        # -- 2. reject ----------------------------------------------------------------------------
        trigger(api, "manual__reject", "2013-02-12")
        detail = wait_for_approval(api, svc, "manual__reject")
        second = registry.alias_version("challenger", settings)
        assert second != first
        assert detail["subject"] == f"Promote flight_delay_xgb v{second} to @champion (now v{first})?"
        assert f"champion v{first}" in detail["body"]
        page = "/dags/train_model/runs/manual__reject/tasks/approval/required_actions"
        shot = screenshot(svc, page, "Model card", shots / "required-action-model-card.png")
        print(f"\nthe waiting approval with its model card: {shot}")
        answer(api, "manual__reject", "reject")
        assert wait_for_run(api, svc, "manual__reject") == "success"
        timings["second_done_s"] = time.monotonic() - t0
        assert task_state(api, "manual__reject", "publish_champion") == "skipped"

    assert registry.alias_version(CHAMPION, settings) == first, "a rejection moved the champion"
    tags = registry.version_info(second, settings).tags
    assert tags["promotion.decision"] == "rejected" and tags["promotion.reason"].startswith(
        "rejected by approver:admin"
    )
    assert registry.version_info(first, settings).tags["promotion.decision"] == "promoted"
    trail = audit.read(settings=settings)
    summary = [(e.kind, e.alias or e.decision, e.to_version or e.version, e.actor) for e in trail]
    assert summary == [
        ("alias_moved", "challenger", first, "register"),
        ("approval", "promote", first, "approver:admin"),
        ("alias_moved", "champion", first, "approver:admin"),
        ("alias_moved", "challenger", second, "register"),
        ("approval", "reject", second, "approver:admin"),
    ], summary
    assert trail[2].context["dag_run_id"] == "manual__approve" and trail[2].context["task_id"] == "promote"
    print("\n" + audit.format_trail(trail))
    print(f"timings: {timings}")
