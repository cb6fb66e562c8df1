"""The ingest gate against the 365 real days of 2013 and a catalogue of injected export faults.

    .venv/bin/python benchmarks/validation_faults.py [--fault NAME ...] [--real-days N] \
        [--out benchmarks/results/validation_faults.json]

    # the same with the suite of an earlier commit (before/after timings on the same machine):
    git show REV:include/mlops/ingest/validation.py > /tmp/v/validation_rev.py
    PYTHONPATH=/tmp/v .venv/bin/python benchmarks/validation_faults.py --validation-module validation_rev

Prints ``365 real days -> N rejected`` (must be 0: every real day passes), then for each fault kind
of :data:`FAULTS` how many of the sample days it was caught on, by which checks, and the median
validation time per day. Each day goes the way a landing export does: the simulator's replay of
the day (:func:`mlops.ingest.simulator.replay_day`), damaged by the fault, serialized like upstream
(:func:`mlops.ingest.simulator.to_csv_bytes`), parsed strictly (:func:`mlops.ingest.steps.parse_raw`) and
validated with the process-wide suite (:func:`mlops.ingest.validation.validate`). Only the validation is
timed.

The faults are the corruptions real exports carry (a clock written in another format, a unit
change, a time-zone shift, swapped or shifted columns, a column collapsed to a constant, nulls or
zeros where the other fields say otherwise, a truncated day, a missing airport feed, codes in
lower case). Each is deterministic. ``tests/unit/test_validation.py`` injects each one into one day
and checks that the gate rejects it with the right check and a message naming the values. A fault
that changes nothing on a day (no cancelled flight to give a zero delay) is not counted there.
Exit status 1 when a real day is rejected or a fault is missed on some day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

#: Days the faults are injected into: every 4th week from Jan 1, and the hard days (the Feb 9
#: blizzard, both daylight-saving switches, Thanksgiving, New Year's Eve).
SAMPLE_DAYS: tuple[str, ...] = tuple(
    sorted(
        {(dt.date(2013, 1, 1) + dt.timedelta(days=28 * k)).isoformat() for k in range(14)}
        | {"2013-02-09", "2013-03-10", "2013-11-03", "2013-11-28", "2013-12-31"}
    )
)

#: Time zones of the four destinations the reference ``airports`` table lacks.
_EXTRA_TZ = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


# --- helpers --------------------------------------------------------------------------------------


def _minutes(hhmm: pd.Series) -> pd.Series:
    return (hhmm // 100) * 60 + hhmm % 100


def _hhmm(minutes: pd.Series) -> pd.Series:
    minutes = minutes % 1440
    return (minutes // 60) * 100 + minutes % 60


@functools.cache
def _dest_tz() -> dict[str, str]:
    from mlops import reference

    return {**reference.load("airports").set_index("faa")["tzone"].to_dict(), **_EXTRA_TZ}


def _offset_minutes(tz: str, ds: str) -> float:
    from zoneinfo import ZoneInfo

    day = dt.date.fromisoformat(ds)
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(tz))
    offset = noon.utcoffset()
    assert offset is not None
    return offset.total_seconds() / 60


def _tz_gap(frame: pd.DataFrame, ds: str) -> pd.Series:
    """Minutes the destination's clock is ahead of New York's on ``ds`` (negative westward)."""
    ny = _offset_minutes("America/New_York", ds)
    gaps = {d: _offset_minutes(tz, ds) - ny for d, tz in _dest_tz().items() if d in set(frame["dest"])}
    return frame["dest"].map(gaps)


# --- faults ---------------------------------------------------------------------------------------
# Each takes the day's clean raw export (a copy) and its date and returns the damaged frame.


def clock_decimal_hours(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """dep_time written as decimal hours x 100 (12:45 -> 1275)."""
    m = _minutes(f["dep_time"])
    return f.assign(dep_time=(m / 60 * 100).round())


def clock_minutes_past_59(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Three rows' dep_time get 60 added to the minutes (1215 -> 1275)."""
    rows = f.index[f["dep_time"].notna() & (f["dep_time"] % 100 < 40) & (f["dep_time"] < 2300)][:3]
    f.loc[rows, "dep_time"] += 60
    return f


def clock_minutes_of_day(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """arr_time written as minutes after midnight (14:30 -> 870)."""
    return f.assign(arr_time=_minutes(f["arr_time"]))


def clock_fields_in_utc(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Every hhmm field, hour and minute on the UTC clock (time_hour, already UTC, unchanged)."""
    shift = -_offset_minutes("America/New_York", ds)
    out = f.copy()
    for c in ("dep_time", "sched_dep_time", "arr_time", "sched_arr_time"):
        out[c] = _hhmm(_minutes(f[c]) + shift)
    return out.assign(hour=out["sched_dep_time"] // 100, minute=out["sched_dep_time"] % 100)


def time_hour_local(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """time_hour written on the local clock with a 'Z' (05:00 local -> '...T05:00:00Z')."""
    return f.assign(time_hour=[f"{ds}T{h:02d}:00:00Z" for h in f["hour"]])


def hour_from_actual_departure(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """hour/minute taken from the actual departure (dep_time) when there is one."""
    actual = f["dep_time"].where(f["dep_time"] < 2400).fillna(f["sched_dep_time"]).astype("int64")
    return f.assign(hour=actual // 100, minute=actual % 100)


def delays_in_hours(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """dep_delay and arr_delay in hours instead of minutes."""
    return f.assign(dep_delay=(f["dep_delay"] / 60).round(2), arr_delay=(f["arr_delay"] / 60).round(2))


def delays_clipped_at_zero(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Early flights get delay 0 (the DOT's DepDelayMinutes instead of DepDelay)."""
    return f.assign(dep_delay=f["dep_delay"].clip(lower=0), arr_delay=f["arr_delay"].clip(lower=0))


def dep_arr_time_swapped(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """dep_time and arr_time swapped."""
    return f.assign(dep_time=f["arr_time"], arr_time=f["dep_time"])


def missing_delays_as_zero(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Cancelled and diverted flights get delays 0 instead of null."""
    return f.assign(dep_delay=f["dep_delay"].fillna(0), arr_delay=f["arr_delay"].fillna(0))


def arr_delay_nulled(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Every 5th arrived flight loses its arr_delay (null; 20%, under the 65% null limit)."""
    f.loc[f.index[::5], "arr_delay"] = float("nan")
    return f


def distance_in_km(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """distance in kilometres instead of miles. Caught before on the Honolulu rows (range)."""
    return f.assign(distance=(f["distance"] * 1.609344).round().astype("int64"))


def distance_constant(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """distance collapsed to one value (the day's median) on every row."""
    return f.assign(distance=int(f["distance"].median()))


def dest_shifted_one_row(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """dest shifted down one row (a misaligned column: each flight gets the previous one's)."""
    dest = f["dest"].shift(1)
    dest.iloc[0] = f["dest"].iloc[-1]
    return f.assign(dest=dest)


def dest_copied_from_origin(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Every 50th row's dest is its origin (a join that fell back to the wrong column)."""
    f.loc[f.index[::50], "dest"] = f.loc[f.index[::50], "origin"]
    return f


def air_time_is_block_time(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """air_time is the gate-to-gate time (taxi included), not the time in the air."""
    block = (_minutes(f["arr_time"]) - _minutes(f["dep_time"]) - _tz_gap(f, ds)) % 1440
    return f.assign(air_time=block.where(f["air_time"].notna()))


def air_time_constant(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """air_time collapsed to the day's median on every flown row."""
    return f.assign(air_time=f["air_time"].where(f["air_time"].isna(), f["air_time"].median()))


def arrivals_on_new_york_clock(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """arr_time and sched_arr_time on New York's clock instead of the destination's."""
    gap = _tz_gap(f, ds)
    return f.assign(
        arr_time=_hhmm(_minutes(f["arr_time"]) - gap).where(f["arr_time"].notna()),
        sched_arr_time=_hhmm(_minutes(f["sched_arr_time"]) - gap).astype("int64"),
    )


def tailnum_lowercase(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Tail numbers in lower case ('n14228')."""
    return f.assign(tailnum=f["tailnum"].str.lower())


def tailnum_constant(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """tailnum collapsed to one aircraft on every row."""
    return f.assign(tailnum=f["tailnum"].where(f["tailnum"].isna(), "N14228"))


def truncated_at_1800(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """The export stops at 18:00: the evening's flights are missing (volume still >= 70%)."""
    return f[f["sched_dep_time"] < 1800].reset_index(drop=True)


def file_cut_at_80pct(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """The file is cut at a line boundary after 80% of its rows (upstream sorts by dep_time)."""
    return f.iloc[: int(len(f) * 0.8)].reset_index(drop=True)


def origin_feed_missing(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """LaGuardia's flights are missing (one airport's feed failed; volume still >= 60%)."""
    return f[f["origin"] != "LGA"].reset_index(drop=True)


def carrier_lowercase(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Carrier codes in lower case ('ua'). Caught before: the carrier domain."""
    return f.assign(carrier=f["carrier"].str.lower())


def rows_doubled(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Every row twice (an export appended to itself). Caught before: keys and volume."""
    import pandas as pd

    return pd.concat([f, f], ignore_index=True)


def dated_by_utc(f: pd.DataFrame, ds: str) -> pd.DataFrame:
    """year/month/day from the UTC time_hour (evening flights dated tomorrow). Caught before."""
    import pandas as pd

    utc = pd.to_datetime(f["time_hour"])
    return f.assign(year=utc.dt.year, month=utc.dt.month, day=utc.dt.day)


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[pd.DataFrame, str], pd.DataFrame]
    check: str  # the check that must report it
    caught_before: bool = False  # rejected before the semantic checks (issue 19), by another check

    @property
    def description(self) -> str:
        return (self.apply.__doc__ or "").strip().splitlines()[0]


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("clock_decimal_hours", clock_decimal_hours, "clock"),
        Fault("clock_minutes_past_59", clock_minutes_past_59, "clock"),
        Fault("clock_minutes_of_day", clock_minutes_of_day, "clock"),
        Fault("clock_fields_in_utc", clock_fields_in_utc, "consistency"),
        Fault("time_hour_local", time_hour_local, "consistency"),
        Fault("hour_from_actual_departure", hour_from_actual_departure, "consistency"),
        Fault("delays_in_hours", delays_in_hours, "consistency"),
        Fault("delays_clipped_at_zero", delays_clipped_at_zero, "consistency"),
        Fault("dep_arr_time_swapped", dep_arr_time_swapped, "consistency"),
        Fault("missing_delays_as_zero", missing_delays_as_zero, "consistency"),
        Fault("arr_delay_nulled", arr_delay_nulled, "consistency"),
        Fault("distance_in_km", distance_in_km, "consistency", caught_before=True),  # ranges: HNL rows
        Fault("distance_constant", distance_constant, "consistency"),
        Fault("dest_shifted_one_row", dest_shifted_one_row, "consistency"),
        Fault("dest_copied_from_origin", dest_copied_from_origin, "consistency"),
        Fault("air_time_is_block_time", air_time_is_block_time, "consistency"),
        Fault("air_time_constant", air_time_constant, "consistency"),
        Fault("arrivals_on_new_york_clock", arrivals_on_new_york_clock, "consistency"),
        Fault("tailnum_lowercase", tailnum_lowercase, "domains"),
        Fault("tailnum_constant", tailnum_constant, "profile"),
        Fault("truncated_at_1800", truncated_at_1800, "profile"),
        Fault("file_cut_at_80pct", file_cut_at_80pct, "profile"),
        Fault("origin_feed_missing", origin_feed_missing, "profile"),
        Fault("carrier_lowercase", carrier_lowercase, "domains", caught_before=True),
        Fault("rows_doubled", rows_doubled, "keys", caught_before=True),
        Fault("dated_by_utc", dated_by_utc, "partition", caught_before=True),
    )
}


def landed(ds: str, fault: str | None = None) -> pd.DataFrame | None:
    """Day ``ds`` as the ingest task reads it: replayed, damaged by ``fault``, CSV, parsed.

    ``None`` when the fault changes nothing on that day (e.g. zeros for the delays of cancelled
    flights on a day without cancellations).
    """
    from mlops.ingest.simulator import replay_day, to_csv_bytes
    from mlops.ingest.steps import parse_raw

    clean = replay_day(ds)
    data = to_csv_bytes(clean)
    if fault is not None:
        damaged = to_csv_bytes(FAULTS[fault].apply(clean.copy(), ds))
        if damaged == data:
            return None
        data = damaged
    return parse_raw(data)


# --- run ------------------------------------------------------------------------------------------


@dataclass
class Timed:
    success: bool
    checks: list[str]
    wall: float
    cpu: float
    problems: str


def _validate(validation: Any, frame: pd.DataFrame, ds: str) -> Timed:
    t0, c0 = time.perf_counter(), time.process_time()
    outcome = validation.validate(frame, ds)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Timed(outcome.success, sorted({f.check for f in outcome.failures}), wall, cpu, outcome.problems)


def _ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.0f} ms" if values else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fault", action="append", choices=sorted(FAULTS), help="only these fault kinds")
    p.add_argument("--real-days", type=int, default=365, help="validate the first N real days of 2013")
    p.add_argument("--no-faults", action="store_true", help="only the real days")
    p.add_argument(
        "--validation-module",
        default="mlops.ingest.validation",
        help="module providing validate(frame, ds), to time another version of the suite (e.g. "
        "`git show REV:include/mlops/ingest/validation.py > /tmp/v/validation_rev.py`, then "
        "PYTHONPATH=/tmp/v and --validation-module validation_rev)",
    )
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    ns = p.parse_args(argv)

    validation = importlib.import_module(ns.validation_module)
    load_start = [round(x, 2) for x in os.getloadavg()]
    validation.validate(landed("2013-01-01"), "2013-01-01")  # build the suite outside the timings
    real = [(dt.date(2013, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(ns.real_days)]
    rejected: dict[str, str] = {}
    wall: list[float] = []
    cpu: list[float] = []
    for ds in real:
        frame = landed(ds)
        assert frame is not None
        r = _validate(validation, frame, ds)
        wall.append(r.wall)
        cpu.append(r.cpu)
        if not r.success:
            rejected[ds] = r.problems
    print(
        f"{len(real)} real days -> {len(rejected)} rejected (must be 0); validation per day: "
        f"median {_ms(cpu)} CPU, {_ms(wall)} wall (p90 {1000 * statistics.quantiles(wall, n=10)[-1]:.0f} ms); "
        f"total {sum(wall):.1f} s wall; {ns.validation_module}"
    )
    for ds, problems in list(rejected.items())[:10]:
        print(f"  rejected {ds}: {problems[:300]}")

    results: dict[str, dict[str, Any]] = {}
    faults = [] if ns.no_faults else ns.fault or list(FAULTS)
    if faults:
        print(f"\nfaults injected into {len(SAMPLE_DAYS)} days ({SAMPLE_DAYS[0]} ... {SAMPLE_DAYS[-1]}):")
        print(f"{'fault':<28} {'caught':>7}  {'CPU/day':>7}  checks that fired")
    for name in faults:
        caught, fired, ftimes, missed, inert = 0, set(), [], [], []
        for ds in SAMPLE_DAYS:
            frame = landed(ds, name)
            if frame is None:
                inert.append(ds)
                continue
            r = _validate(validation, frame, ds)
            ftimes.append(r.cpu)
            fired |= set(r.checks)
            caught += not r.success
            if r.success:
                missed.append(ds)
        n = len(SAMPLE_DAYS) - len(inert)
        verdict = "caught" if caught == n else ("missed" if caught == 0 else "partly")
        note = f" (no-op on {', '.join(inert)})" if inert else ""
        print(
            f"{name:<28} {caught:>3}/{n:<3}  {_ms(ftimes):>7}  {verdict}: {', '.join(sorted(fired)) or '-'}{note}"
        )
        results[name] = {
            "description": FAULTS[name].description,
            "caught": caught,
            "days": n,
            "missed_days": missed,
            "no_op_days": inert,
            "checks": sorted(fired),
            "median_cpu_seconds": statistics.median(ftimes) if ftimes else None,
        }
    if ns.out:
        ns.out.write_text(
            json.dumps(
                {
                    "validation_module": ns.validation_module,
                    "real_days": len(real),
                    "rejected": rejected,
                    "median_cpu_seconds_per_day": statistics.median(cpu),
                    "median_wall_seconds_per_day": statistics.median(wall),
                    "total_wall_seconds": sum(wall),
                    "faults": results,
                    "load_average_start": load_start,
                    "load_average_end": [round(x, 2) for x in os.getloadavg()],
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if rejected or any(r["caught"] != r["days"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
