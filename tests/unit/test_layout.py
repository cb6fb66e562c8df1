"""mlops.layout builds exactly the paths of DESIGN.md's "Lake layout" table.

The table below is DESIGN.md's, verbatim (its placeholders are passed to the layout functions as
roots, days and names, so each function must print the table's line). A layout change that moves
a path breaks this test: change DESIGN.md (a public contract) first, then both.
"""

from __future__ import annotations

import pytest

from mlops import layout

DESIGN_LAKE_LAYOUT = """
{landing}/flights/ds=YYYY-MM-DD/flights.csv           raw daily export (as upstream writes it)
{landing}/weather/ds=YYYY-MM-DD/weather.csv           hourly weather export of the day
{lake}/curated/flights/ds=YYYY-MM-DD/data.parquet     validated; rewritten atomically on rerun
{lake}/curated/weather/ds=YYYY-MM-DD/data.parquet     validated weather; features read it from here
{lake}/quarantine/flights/ds=YYYY-MM-DD/              rejected batch + its validation report
{lake}/features/<feature_view>/...                    Feast offline sources
{lake}/predictions/ds=YYYY-MM-DD/data.parquet
{lake}/reports/{validation,drift}/ds=YYYY-MM-DD/      HTML + JSON
"""

LANDING, LAKE, DS, VIEW = "{landing}", "{lake}", "YYYY-MM-DD", "<feature_view>"


def design_paths() -> list[str]:
    paths = [line.split()[0] for line in DESIGN_LAKE_LAYOUT.strip().splitlines()]
    reports = "{lake}/reports/{validation,drift}/ds=YYYY-MM-DD/"
    assert reports in paths
    return [p for p in paths if p != reports] + [
        reports.replace("{validation,drift}", kind) for kind in ("validation", "drift")
    ]


BUILT = {
    "{landing}/flights/ds=YYYY-MM-DD/flights.csv": layout.landing_file(LANDING, DS),
    "{landing}/weather/ds=YYYY-MM-DD/weather.csv": layout.landing_file(LANDING, DS, "weather"),
    "{lake}/curated/flights/ds=YYYY-MM-DD/data.parquet": layout.curated_file(LAKE, DS),
    "{lake}/curated/weather/ds=YYYY-MM-DD/data.parquet": layout.curated_file(LAKE, DS, "weather"),
    "{lake}/quarantine/flights/ds=YYYY-MM-DD/": layout.quarantine_dir(LAKE, DS),
    "{lake}/features/<feature_view>/...": layout.feature_file(LAKE, VIEW, DS),
    "{lake}/predictions/ds=YYYY-MM-DD/data.parquet": layout.predictions_file(LAKE, DS),
    "{lake}/reports/validation/ds=YYYY-MM-DD/": layout.report_dir(LAKE, layout.VALIDATION, DS),
    "{lake}/reports/drift/ds=YYYY-MM-DD/": layout.report_dir(LAKE, layout.DRIFT, DS),
}


def test_every_path_of_the_design_table_is_built():
    assert sorted(design_paths()) == sorted(BUILT)


@pytest.mark.parametrize("design", design_paths())
def test_the_layout_prints_the_design_line(design: str):
    built = BUILT[design]
    if design.endswith("/..."):
        assert built.startswith(design.removesuffix("..."))
    else:
        assert built == design.rstrip("/")


def test_paths_beyond_the_table():
    # Named in DESIGN.md / README outside the table: the monitoring's state and served predictions.
    assert layout.static_feature_file(LAKE, "aircraft") == "{lake}/features/aircraft/data.parquet"
    assert layout.feature_file(LAKE, VIEW, DS) == "{lake}/features/<feature_view>/ds=YYYY-MM-DD/data.parquet"
    assert layout.drift_history_file(LAKE) == "{lake}/reports/drift/history.parquet"
    assert layout.drift_ledger_file(LAKE) == "{lake}/reports/drift/requests/ledger.json"
    assert layout.predictions_online_dir(LAKE, DS) == "{lake}/predictions_online/ds=YYYY-MM-DD"
    assert layout.training_dir(LAKE, DS, "key") == "{lake}/training/as_of=YYYY-MM-DD/key"


def test_roots_are_uris():
    assert layout.curated_file("s3://bucket/lake/", "2013-06-01") == (
        "s3://bucket/lake/curated/flights/ds=2013-06-01/data.parquet"
    )
    assert layout.partition_day("file:///x/curated/flights/ds=2013-06-01/data.parquet") == "2013-06-01"
    assert layout.partition_day("file:///x/curated/flights/") is None


def test_unknown_report_kind_names_the_kinds():
    with pytest.raises(ValueError, match="'validation' or 'drift'"):
        layout.report_dir(LAKE, "quality", DS)


def test_the_day_built_marker_is_the_last_daily_view_materialize_writes():
    from mlops.features import compute

    assert layout.LAST_DAILY_VIEW == compute.DAILY_VIEWS[-1]
    assert (
        layout.features_built_file(LAKE, DS)
        == "{lake}/features/aircraft_previous_leg/ds=YYYY-MM-DD/data.parquet"
    )
