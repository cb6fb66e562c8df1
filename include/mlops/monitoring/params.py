"""The params of a drift check: windows, sampling, thresholds, the guard's cooldown (no I/O)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlops.params import parse_bool, parse_ds

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class DriftParams:
    """Windows, sampling and thresholds of a check (keys of ``mlops.airflow.params.DRIFT_PARAMS``)."""

    window_days: int = 7
    sample_size: int = 20_000
    seed: int = 42
    #: Share of monitored features whose drift score passes their threshold => data drift.
    drift_share: float = 0.3
    #: Per-feature thresholds: Wasserstein distance (normed by the reference std) / Jensen-Shannon.
    #: Not Evidently's 0.1: half the model's features are 7/28-day aggregates and weather, whose
    #: one-week distribution is narrow, so a week *inside* the training month already scores
    #: above 0.1 on ~75% of them (above 1.0 on ~12%); see the DRIFT_PARAMS description.
    num_threshold: float = 1.0
    cat_threshold: float = 0.1
    #: Wasserstein distance (normed) of the predicted probability => prediction drift.
    prediction_threshold: float = 0.5
    #: Current ROC-AUC this far below the champion's holdout ROC-AUC => performance breach.
    max_auc_drop: float = 0.05
    #: Expected calibration error (10 quantile bins) above this => calibration breach (weekly
    #: delay rates swing by several points with the weather, so not tighter than this).
    max_calibration_error: float = 0.1
    min_current_rows: int = 500
    min_labelled_rows: int = 500
    #: Days (of data time) between requests, and after a promotion, before another request.
    cooldown_days: int = 7
    #: Calendar features whose window distribution differs from a longer reference by construction.
    ignore_features: tuple[str, ...] = ("month",)
    #: False: check and report only, never request retraining.
    allow_retrain: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DriftParams:
        """Build from Airflow params / JSON, ignoring unknown keys and ``None`` values."""
        values = dict(values or {})
        defaults = cls()
        kwargs: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            value = values.get(spec.name)
            if value is not None:
                kwargs[spec.name] = _typed(spec.name, value, type(getattr(defaults, spec.name)))
        params = cls(**kwargs)
        params.check()
        return params

    def check(self) -> None:
        if self.window_days < 1:
            raise ValueError(f"window_days={self.window_days}: need at least 1 day")
        if self.sample_size < 100:
            raise ValueError(f"sample_size={self.sample_size}: need at least 100 rows per side")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share={self.drift_share}: must be in (0, 1]")

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ignore_features"] = list(self.ignore_features)
        return out

    def thresholds(self) -> dict[str, float]:
        return {
            "drift_share": self.drift_share,
            "num_threshold": self.num_threshold,
            "cat_threshold": self.cat_threshold,
            "prediction_threshold": self.prediction_threshold,
            "max_auc_drop": self.max_auc_drop,
            "max_calibration_error": self.max_calibration_error,
        }


def _typed(name: str, value: Any, kind: type) -> Any:
    """``value`` as the field's type: booleans by :func:`mlops.params.parse_bool`, lists from CSV."""
    if kind is bool:
        return parse_bool(value, name)
    if kind is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(item).strip() for item in items if str(item).strip())
    return kind(value)


def window_days(ds: str, days: int) -> list[str]:
    """The ``days`` local days ending with ``ds`` (inclusive), oldest first."""
    end = parse_ds(ds)
    return [(end - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
