"""The service's single-row feature path equals mlops.features.compute (the training code), value for value.

No Feast and no MLflow: the Feast values are synthetic (real flights, random values with gaps),
the comparison is on the model's input matrix, so every difference that could reach the booster
(keys, clock features, categories, derived features, typing) is caught. The same check through
the real online store and ``get_historical_features`` is in tests/e2e/test_serving_http.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.config import get_settings
from mlops.features import compute
from mlops.serving.model import ServedModel
from mlops.serving.online import FlightRequest, entity_keys, feature_row, request_values, to_frame
from mlops.serving.schemas import parse_departure
from mlops.training.model import DelayModel
from tests.conftest import use_home
from tests.unit.test_features import curated_days

#: Both DST switches, a holiday, a summer day with many flights.
DAYS = ["2013-03-10", "2013-07-04", "2013-11-03"]


def _requests(frame: pd.DataFrame) -> list[FlightRequest]:
    return [
        FlightRequest(
            carrier=r.carrier,
            flight=int(r.flight),
            origin=r.origin,
            dest=r.dest,
            sched_dep_ts=r.sched_dep_ts.to_pydatetime(),
            tailnum=None if pd.isna(r.tailnum) else r.tailnum,
        )
        for r in frame.itertuples()
    ]


@pytest.fixture(scope="module", autouse=True)
def route_home(tmp_path_factory: pytest.TempPathFactory):
    """A home whose lake holds the route table a feature build of ``DAYS`` writes (requests carry
    no distance: both paths read it from there)."""
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp_path_factory.mktemp("routes") / "mlops")
        compute.update_routes(curated_days(DAYS), get_settings())
        compute._route_distance.cache_clear()
        yield
    compute._route_distance.cache_clear()


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    cur = curated_days(DAYS)
    # Odd cases on top of real rows: an unknown tail, a destination outside the categories, a
    # route without a distance, a sub-second departure time.
    extra = cur.head(3).copy()
    extra["tailnum"] = pd.array(["NZZZZZ", None, "N14228"], dtype="string")
    extra["dest"] = pd.array(["ZZZ", "BOS", "IAH"], dtype="string")
    extra["origin"] = pd.array(["EWR", "LGA", "JFK"], dtype="string")
    extra["sched_dep_ts"] = extra["sched_dep_ts"] + pd.to_timedelta([0, 500_000, 1], unit="us")
    out = pd.concat([cur, extra], ignore_index=True)
    return out[["carrier", "flight", "origin", "dest", "sched_dep_ts", "tailnum"]]


@pytest.fixture(scope="module")
def feast_values(flights: pd.DataFrame) -> pd.DataFrame:
    """Random Feast values for every flight: plausible ranges, ~15% missing, unknown engines."""
    rng = np.random.default_rng(0)
    n = len(flights)
    names = [f for _, feats in compute.VIEW_FEATURES.values() for f in feats]
    values: dict[str, object] = {}
    epoch = flights["sched_dep_ts"].astype("int64").to_numpy() / 1e6
    for name in names:
        if name == "plane_engine":
            choices = np.array(
                [*compute.categorical_dtypes()["plane_engine"].categories, "Warp drive", None], dtype=object
            )
            values[name] = rng.choice(choices, n)
            continue
        if name == "plane_year":
            col = rng.integers(1960, 2013, n).astype("float64")
        elif name.endswith("_epoch"):
            col = epoch - rng.integers(60, 20_000, n)
        else:
            col = rng.normal(10, 20, n)
        col[rng.random(n) < 0.15] = np.nan
        values[name] = col
    out = pd.DataFrame(values, index=flights.index)
    out.loc[out.index[::50], :] = None  # some flights with no Feast row at all
    return out


def _model() -> tuple[DelayModel, ServedModel]:
    cats = {k: [str(c) for c in v.categories] for k, v in compute.categorical_dtypes().items()}
    delay = DelayModel(booster=None, features=list(compute.MODEL_FEATURES), categories=cats)  # type: ignore[arg-type]
    served = ServedModel(
        name="m", version="1", features=list(compute.MODEL_FEATURES), categories=cats, booster=None
    )
    return delay, served


def test_entity_keys_match(flights):
    expected = compute.entity_keys(flights)
    for i, req in enumerate(_requests(flights)):
        got = entity_keys(req)
        for key in compute.JOIN_KEYS:
            assert got[key] == expected[key].iloc[i], (i, key)


def test_request_features_match(flights):
    # Requests carry no distance: both paths take it from the route table.
    expected = compute.request_features(flights)
    for i, req in enumerate(_requests(flights)):
        got = request_values(req)
        for col in compute.REQUEST_FEATURES:
            want = expected[col].iloc[i]
            if pd.isna(want):
                assert got[col] is None or np.isnan(got[col]), (i, col, got[col])
            else:
                assert got[col] == want, (i, col, got[col], want)


def test_model_inputs_match_model_frame(flights, feast_values):
    """The matrix the booster sees: training code (model_frame + DelayModel.matrix) == serving path."""
    delay, served = _model()
    expected = delay.matrix(compute.model_frame(flights, feast_values))
    columns = []
    for c in delay.features:
        if c in delay.categories:
            codes = expected[c].cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan  # code -1: missing
            columns.append(codes)
        else:
            columns.append(expected[c].to_numpy(dtype="float64"))
    want = np.column_stack(columns)
    records = feast_values.astype(object).where(feast_values.notna(), None).to_dict(orient="records")
    rows = [feature_row(req, rec) for req, rec in zip(_requests(flights), records, strict=True)]
    got = served.matrix(rows)
    assert got.shape == want.shape == (len(flights), len(compute.MODEL_FEATURES))
    diff = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    if diff.any():
        rows_, cols_ = np.nonzero(diff)
        examples = [
            f"{delay.features[c]} row {r}: serving={got[r, c]!r} training={want[r, c]!r}"
            for r, c in list(zip(rows_, cols_, strict=True))[:10]
        ]
        raise AssertionError(f"{diff.sum()} model inputs differ:\n" + "\n".join(examples))
    # The check is not vacuous: every column has values, and unknown categories are missing.
    assert np.isfinite(got).any(axis=0).all()
    j = delay.features.index("dest")
    assert np.isnan(got[len(flights) - 3, j])


def test_to_frame_round_trips(flights):
    reqs = _requests(flights.head(20))
    frame = to_frame(reqs)
    pd.testing.assert_frame_equal(
        compute.entity_keys(frame).reset_index(drop=True),
        compute.entity_keys(flights.head(20)).reset_index(drop=True),
    )


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2013-05-01T08:30:00-04:00", "2013-05-01T12:30:00"),
        ("2013-05-01T12:30:00Z", "2013-05-01T12:30:00"),
        ("2013-05-01 08:30", "2013-05-01T12:30:00"),  # naive: New York time (EDT)
        ("2013-01-15T08:30", "2013-01-15T13:30:00"),  # EST
        ("2013-03-10T02:30", "2013-03-10T07:00:00"),  # skipped hour: shifted forward to 03:00 EDT
        ("2013-11-03T01:30", "2013-11-03T06:30:00"),  # ambiguous: standard time (EST)
    ],
)
def test_departure_times(text, utc):
    assert parse_departure(text) == datetime.fromisoformat(utc).replace(tzinfo=UTC)


def test_naive_times_follow_normalize():
    """A naive request time means what the same local schedule time means in the curated lake."""
    from tests.unit.test_features import curated as curated_rows
    from tests.unit.test_features import raw_flight

    cases = ((3, 10, 230), (11, 3, 130), (5, 15, 845))  # DST gap, DST overlap, an ordinary time
    for month, day, hhmm in cases:
        raw = raw_flight(hhmm, day=day)
        raw["month"] = month
        row = curated_rows([raw]).iloc[0]
        text = f"2013-{month:02d}-{day:02d}T{hhmm // 100:02d}:{hhmm % 100:02d}"
        assert parse_departure(text) == row["sched_dep_ts"].to_pydatetime(), text
