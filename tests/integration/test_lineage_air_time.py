"""``mlops lineage`` and ``mlops reproduce`` of an air-time model version, read from its run's spec.

A small real training of ``flight_air_time_xgb`` (the spec ``air_time``: Feast features of
``air_time_v1``, origin weather from the curated lake) as of 2013-03-01, with one day of the window
left without curated weather (the training leaves its flights out, and says so). Then, from the
registered version alone (the run's ``mlops.spec`` tag names the spec):

- ``mlops lineage 1 --model air_time`` shows both feeds: the flights partitions of the window and
  the weather partitions read, with rows and hashes, and the day without weather;
- ``mlops reproduce 1 --model flight_air_time_xgb`` rebuilds the training set (same hash), reruns
  the search and the refit and gets bit-identical holdout predictions, keyed by the spec's id
  column, reporting the spec's gate metric (MAE);
- after a weather partition the run read is rewritten, reproduce fails on ``weather_partitions``
  naming that day (and the command exits 1).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CURATED = ("2013-01-20", "2013-03-01")
FEATURE_DAYS = ("2013-02-15", "2013-02-28")
AS_OF = "2013-03-01"
#: A day of the window with no curated weather (as if never ingested): its flights are left out.
NO_WEATHER = "2013-02-20"
TRAIN = {
    "as_of": AS_OF,
    "window_days": 14,
    "holdout_days": 4,
    "n_candidates": 2,
    "n_estimators": 40,
    "max_missing_days": 1,  # the day without weather has no training rows left
}
MODEL = "flight_air_time_xgb"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from mlops.dev.seed import seed_lake, train_and_register
    from mlops.features import compute
    from tests._seeded import seeded_home

    with pytest.MonkeyPatch.context() as mp:
        s = seeded_home(mp, tmp_path_factory.mktemp("lineage_air_time"))
        weather = [d for d in compute.day_range(*CURATED) if d != NO_WEATHER]
        seed_lake(CURATED, FEATURE_DAYS, s, weather_days=weather)
        model = train_and_register(TRAIN, s, spec="air_time")
        yield {"settings": s, "version": model.version, "run": model.run, "logged": model.logged}


def test_lineage_shows_both_feeds_from_the_runs_spec(trained, capsys):
    from mlops.cli import main
    from mlops.models.lineage import lineage, model_name_of

    assert model_name_of("air_time") == MODEL and model_name_of(MODEL) == MODEL
    info = lineage(trained["version"], trained["settings"], MODEL)
    assert info["spec"] == "air_time" and info["run_tags"]["mlops.spec"] == "air_time"
    lin = info["lineage"]
    window_days = trained["run"].window.days()
    flights = lin["partitions"]
    assert [p["ds"] for p in flights] == window_days and all(p["rows"] > 500 for p in flights)
    assert all(len(p["sha256"]) == 64 for p in flights)  # seeded without ingest: no content hash
    weather = lin["weather"]
    assert weather["used"] and weather["states"] == {NO_WEATHER: "missing"} and weather["excluded_rows"] > 500
    read = {p["ds"]: p for p in weather["partitions"]}
    assert read[NO_WEATHER].get("missing") and len(read) == len(window_days)
    assert all(
        p["rows"] >= 60 and len(p["sha256"]) == 64 and p["content_hash"].startswith("sha256:")
        for ds, p in read.items()
        if ds != NO_WEATHER
    )
    assert lin["training_set"]["rows"] == trained["run"].read_manifest()["rows"]

    assert main(["lineage", "champion", "--model", "air_time", "--all-partitions"]) == 0
    out = capsys.readouterr().out
    print(out)
    header = out.splitlines()[0]
    assert header.startswith(f"{MODEL} version {trained['version']}  aliases: ") and "champion" in header
    assert "spec: air_time" in out
    assert f"curated partitions: {len(window_days)} read, 0 absent; feed flights" in out
    assert f"weather partitions: {len(window_days) - 1} read, 1 absent" in out
    assert f"days without weather: {NO_WEATHER} (missing)" in out
    some = next(p for ds, p in read.items() if ds != NO_WEATHER)
    assert f"ds={some['ds']}  rows={some['rows']:>5}  sha256={some['sha256']}" in out
    assert "Features: service air_time_v1" in out and "Holdout metrics: mae=" in out


def test_reproduce_an_air_time_version(trained, capsys):
    from mlops.cli import main

    assert main(["reproduce", trained["version"], "--model", MODEL]) == 0
    out = capsys.readouterr().out
    print(out)
    for check in (
        "curated_partitions",
        "weather_partitions",
        "training_set",
        "search",
        "holdout_predictions",
    ):
        assert f"[ok] {check}:" in out, out
    assert "same flight_ids: True, identical: True, max |diff| 0" in out
    recorded = trained["run"].read_manifest()
    assert f"rebuilt {recorded['rows']} rows, sha256 {recorded['data_hash'][:16]}" in out
    assert f"REPRODUCED: {MODEL} v{trained['version']} (spec air_time) as of {AS_OF}, holdout mae" in out


def test_reproduce_fails_when_a_weather_partition_changed(trained, capsys):
    import pandas as pd

    from mlops import lake, layout
    from mlops.cli import main
    from mlops.models.lineage import reproduce

    s = trained["settings"]
    day = trained["run"].window.days()[2]
    uri = layout.curated_file(s.lake_uri, day, layout.WEATHER)
    original = lake.read_bytes(uri)
    try:
        frame = pd.read_parquet(uri)
        lake.write_parquet(uri, frame.assign(temp=frame["temp"] + 1.0))
        report = reproduce(trained["version"], s, MODEL, search=False)
        checks = {c["name"]: c for c in report["checks"]}
        assert not report["passed"]
        assert checks["curated_partitions"]["passed"]
        assert not checks["weather_partitions"]["passed"] and day in checks["weather_partitions"]["detail"]
        assert main(["reproduce", trained["version"], "--model", "air_time", "--no-search"]) == 1
        assert "[FAIL] weather_partitions: " in capsys.readouterr().out
    finally:
        lake.write_bytes(uri, original)


def test_unknown_version_or_alias_is_a_clear_error(trained, capsys):
    from mlops.cli import main

    assert main(["lineage", "99", "--model", MODEL]) == 1
    err = capsys.readouterr().err
    assert f"no version 99 of the registered model '{MODEL}'" in err
    assert main(["reproduce", "staging", "--model", "air_time"]) == 1
    assert f"{MODEL} has no alias @staging" in capsys.readouterr().err
