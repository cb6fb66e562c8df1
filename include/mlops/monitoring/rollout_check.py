"""The rollout guard's check: scrape the service, gather the evidence, judge (no Airflow).

``rollout_guard`` (:class:`mlops.airflow.operators.rollout.RolloutCheckOperator`) calls
:func:`check`; :mod:`mlops.monitoring.rollout` holds the comparison and
:mod:`mlops.monitoring.rollback` the alias move.

Evidence, all read from the stores (nothing here moves an alias):

* the service's ``/metrics`` (``MLOPS_SERVING_METRICS_URL`` or the ``metrics_url`` param), one
  scrape per check, kept as ``{lake}/reports/rollout/metrics/<time_ns>.json``
  (:func:`mlops.layout.rollout_metrics_dir`) so the next checks see every interval since (the
  last :data:`METRICS_LOOKBACK_DAYS` days of scrapes are read);
* the online prediction log ``{lake}/predictions_online/ds=.../`` of the ``window_days`` days
  ending with ``ds``: the rows ``@champion`` answered since it last became champion (the audit
  trail says when: evidence from an earlier stint, e.g. before a rollback, never counts again);
* the labels: curated ``is_delayed`` of those days, for the flights whose arrival was known by the
  end of ``ds`` (the rule of ``monitor_drift``);
* ``@previous``'s probabilities for the same logged model inputs
  (:func:`mlops.models.registry.predictor`).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import CHAMPION, MODEL_NAME, PREVIOUS, Settings, get_settings
from mlops.monitoring.rollout import (
    METRICS_URL_ENV,
    RolloutParams,
    Snapshot,
    compare_auc,
    intervals,
    judge,
    labelled,
    model_inputs,
    parse_metrics,
    served_rows,
    service_stats,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


def metrics_url(value: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The ``/metrics`` URL to scrape: ``value`` (a param), else ``MLOPS_SERVING_METRICS_URL``, else None."""
    import os

    url = (value or (os.environ if env is None else env).get(METRICS_URL_ENV) or "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"metrics URL {url!r}: use http://HOST:PORT/metrics (the prediction service's), "
            f"as the metrics_url param or {METRICS_URL_ENV}"
        )
    return url


def scrape(url: str, timeout: float = 10.0, at: float | None = None) -> Snapshot:
    """GET ``url`` and parse it (:func:`mlops.monitoring.rollout.parse_metrics`)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) checked above)
        text = resp.read().decode("utf-8", errors="replace")
    return parse_metrics(text, at=time.time() if at is None else at, url=url)


def save_snapshot(snapshot: Snapshot, settings: Settings | None = None) -> str:
    """Keep ``snapshot`` in the lake (one new object per scrape, never rewritten); its URI."""
    s = settings or get_settings()
    uri = lake.join(layout.rollout_metrics_dir(s.lake_uri), f"{int(snapshot.at * 1e9):020d}.json")
    lake.write_text(uri, json.dumps(snapshot.as_dict(), sort_keys=True))
    return uri


#: Scrapes older than this are not read (the object names say their time: no read to skip them).
METRICS_LOOKBACK_DAYS = 30


def read_snapshots(
    settings: Settings | None = None, url: str | None = None, after: float | None = None
) -> list[Snapshot]:
    """The kept scrapes (of ``url`` only, when given; taken after ``after``, epoch seconds, when
    given), oldest first."""
    s = settings or get_settings()
    out = []
    for uri in lake.list_uris(layout.rollout_metrics_dir(s.lake_uri)):
        name = uri.rsplit("/", 1)[-1].removesuffix(".json")
        if not uri.endswith(".json") or not name.isdigit():
            continue
        if after is not None and int(name) / 1e9 < after:
            continue
        try:
            snap = Snapshot.from_dict(json.loads(lake.read_text(uri)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"metrics snapshot {uri} is not valid ({exc}); move it aside") from exc
        if url is None or snap.url == url:
            out.append(snap)
    return sorted(out, key=lambda snap: snap.at)


def read_online(days: Sequence[str], settings: Settings | None = None) -> pd.DataFrame:
    """The online prediction log of ``days`` (every part file), or an empty frame."""
    import pandas as pd

    s = settings or get_settings()
    frames = []
    for ds in days:
        for uri in lake.list_uris(layout.predictions_online_dir(s.lake_uri, ds)):
            if uri.endswith(".parquet"):
                frames.append(lake.read_parquet(uri))
    if not frames:
        return pd.DataFrame(columns=["flight_id", "model_version", "served_at", "request_id"])
    return pd.concat(frames, ignore_index=True)


def arrived_labels(days: Sequence[str], settings: Settings | None = None) -> pd.DataFrame:
    """``flight_id`` and ``is_delayed`` of the curated flights of ``days`` whose arrival was known
    by the end of the last day (others: null label)."""
    from mlops.features import compute
    from mlops.monitoring.frames import label_known_at
    from mlops.params import parse_ds
    from mlops.schema import LABEL
    from mlops.spec.model import model_spec

    curated = compute.read_curated(days, settings)
    cutoff = compute.local_midnight((parse_ds(days[-1]) + timedelta(days=1)).isoformat())
    arrived = (label_known_at(model_spec(), curated) <= cutoff).fillna(False).astype(bool)
    return curated.assign(**{LABEL: curated[LABEL].astype("float64").where(arrived)})[["flight_id", LABEL]]


def champion_since(version: str, settings: Settings | None = None, name: str = MODEL_NAME) -> float | None:
    """When ``version`` last became ``@champion`` (epoch seconds, from the audit trail), or None."""
    import pandas as pd

    from mlops.models import audit

    moves = [
        e
        for e in audit.read(name, settings)
        if e.kind == audit.ALIAS_MOVED and e.alias == CHAMPION and e.to_version == str(version)
    ]
    return pd.Timestamp(moves[-1].at).timestamp() if moves else None


def check(
    ds: str,
    params: RolloutParams,
    settings: Settings | None = None,
    *,
    name: str = MODEL_NAME,
    url: str | None = None,
    predictor: Callable[..., Callable[[pd.DataFrame], np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Scrape ``url`` (if any), gather the window's evidence and judge the champion.

    Returns the summary (XCom): the verdict (:meth:`mlops.monitoring.rollout.Verdict.as_dict`),
    the window, the scrape, ``since`` and the params. Moves nothing.
    """
    from mlops.models import registry
    from mlops.monitoring.params import window_days

    s = settings or get_settings()
    predictor = predictor or registry.predictor
    days = window_days(ds, params.window_days)
    champion = registry.alias_version(CHAMPION, s, name)
    previous = registry.alias_version(PREVIOUS, s, name)
    since = champion_since(champion, s, name) if champion else None
    scraped = _scrape_and_keep(url, s)
    notes: list[str] = [scraped["note"]] if scraped.get("note") else []

    auc, evidence = None, {"served_rows": 0, "labelled_rows": 0}
    if champion and previous:
        auc, evidence = _online_auc(days, champion, previous, since, params, s, name, predictor, notes)

    champion_service = previous_service = None
    if url:
        spans = intervals(read_snapshots(s, url, after=time.time() - METRICS_LOOKBACK_DAYS * 86400))
        champion_service = service_stats(champion, spans, since) if champion else None
        previous_service = service_stats(previous, spans) if previous else None
        evidence["intervals"] = len(spans)
    verdict = judge(
        champion,
        previous,
        params,
        auc=auc,
        champion_service=champion_service,
        previous_service=previous_service,
    )
    verdict.notes[:0] = notes
    out = verdict.as_dict()
    log.info(
        "rollout check ds=%s: @champion %s vs @previous %s: %s",
        ds,
        _v(champion),
        _v(previous),
        verdict.reason,
    )
    for note in verdict.notes:
        log.info("  note: %s", note)
    return {
        "ds": ds,
        "model": name,
        "window": [days[0], days[-1]],
        "since": since,
        "metrics_url": url,
        "scrape": {k: v for k, v in scraped.items() if k != "note"},
        "evidence": evidence,
        "params": params.as_dict(),
        "verdict": out,
    }


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def _scrape_and_keep(url: str | None, settings: Settings) -> dict[str, Any]:
    """Scrape and keep a snapshot; a service that does not answer is a note, not a failure (the
    AUC check goes on; the service's own alerts say it is down)."""
    if not url:
        return {"note": f"no metrics URL ({METRICS_URL_ENV} unset): error rate and latency not checked"}
    try:
        snap = scrape(url)
    except (OSError, ValueError) as exc:
        log.warning("scraping %s failed: %s", url, exc)
        return {
            "url": url,
            "ok": False,
            "note": f"scraping {url} failed ({exc}): latest interval not measured",
        }
    return {
        "url": url,
        "ok": True,
        "at": snap.at,
        "served": snap.served,
        "uri": save_snapshot(snap, settings),
    }


def _online_auc(
    days: Sequence[str],
    champion: str,
    previous: str,
    since: float | None,
    params: RolloutParams,
    settings: Settings,
    name: str,
    predictor: Callable[..., Callable[[pd.DataFrame], np.ndarray]],
    notes: list[str],
) -> tuple[Any, dict[str, Any]]:
    """The champion's served, labelled rows scored by both models (see the module docstring)."""
    import pandas as pd

    from mlops.schema import LABEL

    log_frame = read_online(days, settings)
    if log_frame.empty:
        notes.append(f"no online predictions logged in {days[0]}..{days[-1]}")
        return None, {"served_rows": 0, "labelled_rows": 0}
    start = pd.Timestamp(since, unit="s", tz="UTC") if since is not None else None
    served = served_rows(log_frame, champion, start)
    rows = labelled(served, arrived_labels(days, settings))
    evidence = {"logged_rows": len(log_frame), "served_rows": len(served), "labelled_rows": len(rows)}
    if rows.empty:
        notes.append(f"no labelled rows served by v{champion} in {days[0]}..{days[-1]} yet")
        return None, evidence
    scores = predictor(previous, settings, name)(model_inputs(rows))
    y = rows[LABEL].to_numpy()
    return compare_auc(y, rows["delay_probability"].to_numpy(), scores, params), evidence
