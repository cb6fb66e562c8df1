"""mlops.params: one reading of booleans and days for every stage's params."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mlops.params import parse_bool, parse_ds


@pytest.mark.parametrize("value", [True, 1, "1", "true", "True", "YES", "on", " yes "])
def test_true(value):
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", [False, 0, "0", "false", "No", "off", ""])
def test_false(value):
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["maybe", "2", 2, "tru"])
def test_anything_else_is_a_clear_error(value):
    with pytest.raises(ValueError, match=r"allow_retrain=.* is not a boolean: use true or false"):
        parse_bool(value, "allow_retrain")


def test_parse_ds():
    assert parse_ds("2013-07-10") == date(2013, 7, 10)
    assert parse_ds("2013-07-10T05:00:00+00:00") == date(2013, 7, 10)
    assert parse_ds(datetime(2013, 7, 10, 23)) == date(2013, 7, 10)
    assert parse_ds(date(2013, 7, 10)) == date(2013, 7, 10)
    with pytest.raises(ValueError, match=r"as_of='07/10/2013' is not a day: use YYYY-MM-DD"):
        parse_ds("07/10/2013", "as_of")
