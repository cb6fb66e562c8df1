"""A training frame split by local day: (train, holdout) of a window, (fit, validation) of the search.

The parts of a canonically sorted frame are contiguous rows: they share the frame's data (views,
not copies), so treat them as read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.spec.model import model_spec

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec.model import ModelSpec
    from mlops.training.params import Window


def _rows(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """``frame[mask]`` with a fresh index; a view of the frame when the rows are contiguous."""
    import numpy as np
    import pandas as pd

    idx = np.flatnonzero(mask.to_numpy())
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        out = frame.iloc[idx[0] : idx[-1] + 1].copy(deep=False)
        out.index = pd.RangeIndex(len(out))
        return out
    return frame[mask].reset_index(drop=True)


def split(
    frame: pd.DataFrame, window: Window, spec: ModelSpec | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) by local day (the spec's day column): the holdout is ``[holdout_start, end)``."""
    ds = frame[model_spec(spec).day_column].astype(str)
    inside = (ds >= window.start.isoformat()) & (ds < window.end.isoformat())
    hold = ds >= window.holdout_start.isoformat()
    return _rows(frame, inside & ~hold), _rows(frame, inside & hold)


def search_split(
    train: pd.DataFrame, window: Window, spec: ModelSpec | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, validation) of the search: validation is ``[valid_start, holdout_start)``."""
    ds = train[model_spec(spec).day_column].astype(str)
    valid = ds >= window.valid_start.isoformat()
    return _rows(train, ~valid), _rows(train, valid)
