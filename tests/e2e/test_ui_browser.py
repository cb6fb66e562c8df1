"""The Airflow UI in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, Selenium).

A real embedded Airflow (api-server, scheduler, dag-processor, triggerer on SQLite) on a fresh
MLOPS_HOME: one day of ``flights_upstream_simulator`` + ``ingest_flights`` backfilled through the
scheduler, while a subprocess seeds the model registry and the drift history with real calls to
the ``mlops`` package (tests/e2e/_ui_home.py). Then, as a user would: log in on the simple auth
manager's page, open the DAG list and the grid, open "ML lifecycle" from the navigation (the
plugin's page in its iframe: champion, challenger, versions, drift chart, retraining decisions),
and follow the ``validate`` task's "Validation report" extra link to the report it serves; then
open the champion's run in the MLflow UI (``mlflow ui`` on the same store, as ``make up`` starts it).

Screenshots go to ``$MLOPS_UI_SCREENSHOTS`` (default: the test's tmp dir; the path is printed).
Without Chromium the test skips (run ``make deps-apt``); under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlops.config import get_settings
from mlops.dev import embedded
from tests.conftest import IN_CI, REPO
from tests.e2e._ui_home import CHECK_DAYS

DAY = "2013-03-05"  # a Tuesday: the day ingested through the scheduler
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 90  # seconds for one UI element on a loaded 2-core machine


def require_chromium() -> None:
    """Skip without Chromium and its driver, but fail under CI=true (CI must run this test)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    if not missing:
        return
    msg = f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver with `make deps-apt`"
    if IN_CI:
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which(CHROMIUM) or CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which(CHROMEDRIVER) or CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    return driver


def _password(env: dict[str, str]) -> str:
    """The simple auth manager's generated password of ``admin`` (``make up`` prints it too)."""
    path = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    return str(json.loads(path.read_text())["admin"])


def _wait_for_run(api: httpx.Client, dag_id: str, svc, timeout: float = 600) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.check_alive()
        runs = api.get(f"/dags/{dag_id}/dagRuns").raise_for_status().json()["dag_runs"]
        if runs and all(r["state"] in embedded.TERMINAL_STATES for r in runs):
            return runs
        time.sleep(2)
    raise TimeoutError(f"{dag_id}: the run of {DAY} did not finish in {timeout}s")


def _start_mlflow_ui(settings, tmp_path: Path, procs: list) -> str:
    """``mlflow ui`` on the home's tracking store (what ``make up`` starts), on a free port."""
    port = embedded.free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow), "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = (tmp_path / "mlflow-ui.log").open("wb")
    procs.append(
        subprocess.Popen(
            [*cmd, "--backend-store-uri", settings.mlflow_tracking_uri],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as `make up`
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its uvicorn workers are stopped with it (killpg)
        )
    )
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        assert procs[-1].poll() is None, (tmp_path / "mlflow-ui.log").read_text()[-3000:]
        time.sleep(1)
    raise TimeoutError(f"mlflow ui not up at {url}: {(tmp_path / 'mlflow-ui.log').read_text()[-3000:]}")


def _champion_run_url(mlflow_url: str) -> str:
    """The champion's MLflow run, as the operators' "MLflow run" extra link builds it."""
    import mlflow

    from mlops.airflow.links import mlflow_run_url
    from mlops.config import CHAMPION
    from mlops.models import registry

    settings = get_settings()
    version = registry.alias_version(CHAMPION, settings)
    run_id = registry.version_info(version, settings).run_id
    experiment_id = mlflow.MlflowClient(settings.mlflow_tracking_uri).get_run(run_id).info.experiment_id
    os.environ["MLFLOW_UI_URL"] = mlflow_url
    try:
        return mlflow_run_url(experiment_id, run_id)
    finally:
        del os.environ["MLFLOW_UI_URL"]


SEED = """
import json, logging, sys
logging.disable(logging.INFO)
from mlops.config import get_settings
from tests.e2e._ui_home import seed
out = seed(get_settings())
print("SEED " + json.dumps({"registry": out["registry"], "drift": out["drift"], "seconds": out["seconds"]}))
"""


@pytest.mark.slow  # 3-7 minutes on a shared 2-core machine (Airflow start-up dominates)
@pytest.mark.timeout(1200)
def test_airflow_ui_in_headless_chromium(mlops_home: Path, tmp_path: Path):
    require_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("MLOPS_UI_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {shots}")
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    settings = get_settings()
    env = embedded.environment(settings, port=embedded.free_port())
    # The registry and drift state are built beside Airflow's start-up (another process).
    seeder = subprocess.Popen(
        [sys.executable, "-c", SEED],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    svc = None
    driver = None
    procs: list[subprocess.Popen] = []
    try:
        embedded.init_db(env)
        embedded.reserialize(env)
        for dag_id in ("flights_upstream_simulator", "ingest_flights"):
            embedded.backfill(dag_id, DAY, DAY, env)
        svc = embedded.Services(env=env).start()
        timings["airflow_up"] = time.monotonic() - t0
        embedded.unpause(["flights_upstream_simulator", "ingest_flights"], env)
        api = svc.api()  # REST polling is much cheaper than `airflow dags list-runs`
        runs = _wait_for_run(api, "ingest_flights", svc)
        assert [r["state"] for r in runs] == ["success"], runs
        assert [r["state"] for r in _wait_for_run(api, "flights_upstream_simulator", svc)] == ["success"]
        run_id = str(runs[0]["dag_run_id"])
        timings["ingested"] = time.monotonic() - t0
        out, err = seeder.communicate(timeout=600)
        assert seeder.returncode == 0, err[-4000:]
        seeded = json.loads(out.split("SEED ", 1)[1])
        timings["seeded"] = time.monotonic() - t0

        base = svc.url
        # The plugin's pages need an Airflow login.
        assert httpx.get(f"{base}/mlops/lifecycle", timeout=30).status_code == 401

        driver = _browser()
        wait = WebDriverWait(driver, WAIT)

        def shot(name: str) -> Path:
            path = shots / f"{name}.png"
            driver.save_screenshot(str(path))
            return path

        # -- log in (simple auth manager: user admin, generated password) -----------------------
        password = _password(env)
        driver.get(f"{base}/")
        wait.until(EC.url_contains("/auth/login"))
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[name=username]"))).send_keys("admin")
        driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
        shot("00_login")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        assert driver.get_cookie("_token"), "no session cookie after logging in"

        # -- the DAG list and the grid ----------------------------------------------------------
        driver.get(f"{base}/dags")
        for dag_id in ("ingest_flights", "train_model", "monitor_drift"):
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"a[href$='/dags/{dag_id}']")))
        time.sleep(1)  # let the run bars render
        shot("01_dag_list")
        driver.get(f"{base}/dags/ingest_flights")
        wait.until(EC.presence_of_element_located((By.XPATH, "//a[normalize-space()='validate']")))
        wait.until(
            EC.presence_of_element_located((By.CSS_SELECTOR, f"a[href*='/runs/{run_id}/tasks/validate']"))
        )
        time.sleep(1)
        shot("02_grid")

        # -- "ML lifecycle" from the navigation ------------------------------------------------
        nav = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a[aria-label='ML lifecycle']")))
        nav.click()
        wait.until(EC.url_contains("/plugin/ml-lifecycle"))
        frame = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='ML lifecycle']")))
        assert frame.get_attribute("src").endswith("/mlops/lifecycle")
        driver.switch_to.frame(frame)
        wait.until(EC.presence_of_element_located((By.ID, "requests")))
        cards = {
            el.get_attribute("data-role"): el.text
            for el in driver.find_elements(By.CSS_SELECTOR, "section.card[data-role]")
        }
        assert "v2" in cards["champion"] and "ROC-AUC" in cards["champion"], cards
        assert "v3" in cards["challenger"] and "rejected" in cards["challenger"], cards
        assert "v1" in cards["previous"], cards
        versions = driver.find_element(By.ID, "versions").text
        assert all(f"v{v}" in versions for v in ("1", "2", "3")) and "@champion" in versions
        points = driver.find_elements(By.CSS_SELECTOR, "#drift-chart circle")
        assert len(points) == len(CHECK_DAYS)
        assert driver.find_elements(By.CSS_SELECTOR, "#drift-chart circle.breached")
        requests = driver.find_element(By.ID, "requests").text
        n_requested = sum(d["requested"] for d in seeded["drift"])
        badges = [el.text for el in driver.find_elements(By.CSS_SELECTOR, "#requests tbody td:nth-child(2)")]
        assert n_requested >= 1 and badges.count("requested") == n_requested, (badges, requests)
        assert "suppressed" in requests and "already decided" in requests, requests  # the rerun
        driver.switch_to.default_content()
        shot("03_lifecycle_in_airflow")

        # The page on its own, full length (for the README).
        driver.get(f"{base}/mlops/lifecycle")
        wait.until(EC.presence_of_element_located((By.ID, "requests")))
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1440, min(int(height) + 140, 4000))
        shot("04_lifecycle_page")
        driver.set_window_size(1440, 1000)

        # A drift report from the page: Evidently's scripts run in the report's CSP sandbox.
        drift = driver.find_element(By.CSS_SELECTOR, "#checks a[href*='/mlops/reports/drift/']")
        driver.get(drift.get_attribute("href"))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot")))
        assert "Drift check ds=" in driver.find_element(By.TAG_NAME, "body").text
        shot("04b_drift_report")

        # -- an operator extra link: validate -> its validation report ---------------------------
        driver.get(f"{base}/dags/ingest_flights/runs/{run_id}/tasks/validate/details")
        link = wait.until(EC.presence_of_element_located((By.LINK_TEXT, "Validation report")))
        href = link.get_attribute("href")
        assert href == f"{base}/mlops/reports/validation/ds={DAY}/validation.html", href
        shot("05_task_extra_link")
        link.click()
        wait.until(EC.url_to_be(href))
        body = wait.until(EC.presence_of_element_located((By.TAG_NAME, "body"))).text
        assert DAY in body and "flights_raw_v1" in body, body[:2000]
        shot("06_validation_report")

        # -- MLflow: the champion's run, where the train_model tasks' "MLflow run" link leads ----
        mlflow_url = _start_mlflow_ui(settings, tmp_path, procs)
        run_url = _champion_run_url(mlflow_url)
        driver.get(run_url)
        wait.until(EC.presence_of_element_located((By.XPATH, "//*[contains(text(), 'roc_auc')]")))
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "holdout" in body or "roc_auc" in body, body[:2000]
        time.sleep(1)
        shot("07_mlflow_run")
        timings["browser"] = time.monotonic() - t0 - timings["seeded"]
    except Exception:
        if driver is not None:  # what the browser showed when it failed
            driver.switch_to.default_content()
            driver.save_screenshot(str(shots / "failure.png"))
            (shots / "failure.html").write_text(driver.page_source)
            print(f"failed at {driver.current_url}; see {shots / 'failure.png'}")
        raise
    finally:
        if driver is not None:
            driver.quit()
        if svc is not None:
            svc.stop()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if seeder.poll() is None:
            seeder.kill()
            seeder.wait()
    print(f"timings (s, cumulative except browser): { {k: round(v) for k, v in timings.items()} }")
    print(f"seeded: {seeded['seconds']}")
    for path in sorted(shots.glob("*.png")):
        print(f"  {path}")
