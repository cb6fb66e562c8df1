"""Champion vs challenger on shadow traffic (mlops.monitoring.shadow), from a real prediction log.

The log is written by :class:`mlops.serving.logger.PredictionLogger` (the service's own writer),
the labels are a curated partition in the lake; the expected numbers are computed by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.monitoring import shadow
from mlops.serving.logger import LoggedPrediction, PredictionLogger, to_frame
from mlops.serving.online import FlightRequest

#: (champion p, challenger p, label, answered by) per flight; threshold 0.5.
CASES = [
    (0.2, 0.3, 0, "champion"),  # agree (on time), diff +0.1
    (0.7, 0.4, 1, "champion"),  # disagree, diff -0.3
    (0.6, 0.9, 1, "challenger"),  # agree (delayed), canary, diff +0.3
    (0.4, 0.1, 0, "champion"),  # agree, diff -0.3
    (0.55, 0.8, None, "champion"),  # agree, no label (cancelled), diff +0.25
]


def _rows(day: int = 12, champion: str = "3", challenger: str = "4") -> list[LoggedPrediction]:
    out = []
    for i, (pc, pn, _label, answered) in enumerate(CASES):
        flight = FlightRequest("UA", 100 + i, "EWR", "IAH", datetime(2013, 6, day, 15, i, tzinfo=UTC), "N1")
        for alias, version, p in (("champion", champion, pc), ("challenger", challenger, pn)):
            out.append(
                LoggedPrediction(
                    request_id=f"r{i}",
                    served_at=1.37e9 + i,
                    flight=flight,
                    features={"sched_dep_hour": 11.0},
                    probability=p,
                    threshold=0.5,
                    model_name="flight_delay_xgb",
                    model_version=version,
                    prediction_id=f"p{day}-{i}",
                    alias=alias,
                    role="served" if alias == answered else "shadow",
                )
            )
    return out


def _labels(day: int = 12) -> pd.DataFrame:
    ids = [f"2013-06-{day}_UA_{100 + i}_EWR" for i in range(len(CASES))]
    return pd.DataFrame({"flight_id": ids, "is_delayed": pd.array([c[2] for c in CASES], dtype="Int8")})


def test_pairs_and_numbers_by_hand():
    frame = to_frame(_rows())
    # A served row without a pair (shadow off at the time) and an old row without an id: left out.
    lone = to_frame(_rows(day=13)[:1])
    frame = pd.concat([frame, lone], ignore_index=True)
    frame.loc[len(frame) - 1, "prediction_id"] = ""
    paired = shadow.pairs(frame)
    assert len(paired) == 5 and (paired["served_alias"] == "challenger").sum() == 1
    (c,) = shadow.compare(frame, _labels())
    assert (c.champion_version, c.challenger_version, c.pairs, c.canary_pairs) == ("3", "4", 5, 1)
    assert c.agreement_rate == pytest.approx(4 / 5)
    assert c.mean_score_diff == pytest.approx((0.1 - 0.3 + 0.3 - 0.3 + 0.25) / 5)
    assert c.mean_abs_score_diff == pytest.approx((0.1 + 0.3 + 0.3 + 0.3 + 0.25) / 5)
    # Labelled: 4 flights (one cancelled); both models rank the two delayed above the two on time
    # (champion 0.7, 0.6 > 0.4, 0.2; challenger 0.4, 0.9 > 0.3, 0.1): AUC 1 each.
    assert c.labelled == 4 and c.champion_roc_auc == 1.0 and c.challenger_roc_auc == 1.0
    assert (c.first_served_at, c.last_served_at) == ("2013-05-31T11:33:20Z", "2013-05-31T11:33:24Z")


def test_auc_differs_and_needs_both_classes():
    labels = _labels()
    labels.loc[3, "is_delayed"] = 1  # the 0.4 / 0.1 flight was in fact delayed
    (c,) = shadow.compare(to_frame(_rows()), labels)
    # delayed: champion 0.7, 0.6, 0.4 vs on time 0.2 -> 1.0; challenger 0.4, 0.9, 0.1 vs 0.3 -> 2/3
    assert c.champion_roc_auc == pytest.approx(1.0) and c.challenger_roc_auc == pytest.approx(2 / 3, abs=1e-6)
    one_class = labels.assign(is_delayed=pd.array([1] * len(labels), dtype="Int8"))
    (c,) = shadow.compare(to_frame(_rows()), one_class)
    assert c.labelled == 5 and c.champion_roc_auc is None and c.challenger_roc_auc is None
    (c,) = shadow.compare(to_frame(_rows()))
    assert c.labelled == 0 and c.champion_roc_auc is None


def test_one_summary_per_version_pair():
    frame = to_frame(_rows(day=12) + _rows(day=13, challenger="5"))
    got = shadow.compare(frame)
    assert [(c.champion_version, c.challenger_version, c.pairs) for c in got] == [
        ("3", "4", 5),
        ("3", "5", 5),
    ]


def test_a_log_without_the_shadow_columns_is_a_clear_error():
    frame = to_frame(_rows()).drop(columns=["prediction_id", "alias", "role"])
    with pytest.raises(ValueError, match="lacks .*prediction_id.* written before shadow scoring"):
        shadow.pairs(frame)


def test_shadow_summary_reads_the_log_and_the_curated_labels(tmp_path):
    settings = get_settings({"MLOPS_HOME": str(tmp_path)})
    logger = PredictionLogger(settings.lake_uri)
    logger.log(_rows(day=12))
    assert logger.flush() == 10
    lake.write_parquet(layout.curated_file(settings.lake_uri, "2013-06-12"), _labels())
    (summary,) = shadow.shadow_summary(["2013-06-11", "2013-06-12"], settings)
    assert summary["pairs"] == 5 and summary["labelled"] == 4 and summary["champion_roc_auc"] == 1.0
    assert shadow.shadow_summary(["2013-06-20"], settings) == []


def test_the_lifecycle_page_compares_the_newest_days_of_shadow_traffic(tmp_path):
    """recent_days finds the logged days (newest last), and the page's view of the summary."""
    from mlops.models.lifecycle import LifecycleState, _shadow, _shadow_row

    settings = get_settings({"MLOPS_HOME": str(tmp_path)})
    assert shadow.recent_days(settings) == []
    logger = PredictionLogger(settings.lake_uri)
    logger.log(_rows(day=12) + _rows(day=13, challenger="5"))
    assert logger.flush() == 20
    lake.write_parquet(layout.curated_file(settings.lake_uri, "2013-06-12"), _labels())
    assert shadow.recent_days(settings) == ["2013-06-12", "2013-06-13"]
    assert shadow.recent_days(settings, limit=1) == ["2013-06-13"]
    state = LifecycleState()
    _shadow(state, settings)
    assert state.errors == [] and state.shadow_days == ["2013-06-12", "2013-06-13"]
    rows = [_shadow_row(c) for c in state.shadow]
    assert [(r["versions"], r["pairs"], r["canary_pairs"], r["agreement"]) for r in rows] == [
        ("v3 vs v4", 5, 1, "80.0%"),
        ("v3 vs v5", 5, 1, "80.0%"),
    ]
    assert rows[0]["champion_auc"] == "1.0000" and rows[1]["labelled"] == 0 and rows[1]["champion_auc"] == "—"
