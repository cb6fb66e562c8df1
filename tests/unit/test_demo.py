"""The demo's plan: which runs it creates and waits for."""

from __future__ import annotations

from datetime import date

from mlops.demo import _mondays


def test_weekly_training_runs_fall_on_train_models_cron_mondays() -> None:
    weeks = _mondays(date(2013, 1, 29), date(2013, 3, 31))
    assert weeks[0] == date(2013, 2, 4) and weeks[-1] == date(2013, 3, 25)
    assert len(weeks) == 8 and all(d.weekday() == 0 for d in weeks)


def test_a_window_without_a_monday_trains_nothing() -> None:
    assert _mondays(date(2013, 1, 29), date(2013, 2, 3)) == []
    assert _mondays(date(2013, 2, 4), date(2013, 2, 4)) == [date(2013, 2, 4)]
