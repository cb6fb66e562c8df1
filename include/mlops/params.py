"""Parsing of run parameters shared by every stage (no Airflow): booleans and days.

Airflow params, ``dag_run.conf`` and the CLI hand values over as JSON or strings; each stage's
params class (:class:`mlops.monitoring.params.DriftParams`, :class:`mlops.training.params.TrainParams`)
reads them through these helpers, so ``"yes"`` means the same everywhere.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

TRUE_STRINGS = frozenset({"1", "true", "yes", "on"})
FALSE_STRINGS = frozenset({"0", "false", "no", "off", ""})


def parse_bool(value: Any, name: str = "value") -> bool:
    """A boolean from a bool, a number or one of ``TRUE_STRINGS``/``FALSE_STRINGS`` (any case).

    Raises ValueError naming ``name`` for anything else ("maybe" is not silently false).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise ValueError(
        f"{name}={value!r} is not a boolean: use true or false "
        f"(also accepted: {', '.join(sorted(TRUE_STRINGS))} / {', '.join(sorted(FALSE_STRINGS - {''}))})"
    )


def parse_ds(value: Any, name: str = "ds") -> date:
    """A local day from a date, a datetime (its date) or an ISO string (``YYYY-MM-DD``, a time may follow).

    Raises ValueError naming ``name`` and the expected form for anything else.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a day: use YYYY-MM-DD, e.g. 2013-07-10") from None
