"""A model's scores on labelled rows, one function per task kind (named by :class:`mlops.spec.model.Task`).

* :func:`binary_metrics` - ROC-AUC, PR-AUC, log loss, Brier score, base rates (a classifier);
* :func:`regression_metrics` - MAE, RMSE, R², the label's and the prediction's means (a regressor).

:func:`evaluate` is :func:`binary_metrics` (the flight-delay model's; what callers without a spec mean).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


def binary_metrics(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), log loss, Brier score, and the base rates."""
    import numpy as np
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y_arr, p_arr = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    both = len(np.unique(y_arr)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_arr, p_arr)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_arr, p_arr)) if both else float("nan"),
        "log_loss": float(log_loss(y_arr, np.clip(p_arr, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(y_arr, p_arr)),
        "positive_rate": float(y_arr.mean()) if len(y_arr) else float("nan"),
        "mean_prediction": float(p_arr.mean()) if len(p_arr) else float("nan"),
        "rows": float(len(y_arr)),
    }


evaluate = binary_metrics


def regression_metrics(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² (NaN with fewer than two distinct labels), and the label and prediction means."""
    import numpy as np

    y_arr, p_arr = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    if not len(y_arr):
        nan = float("nan")
        return {"mae": nan, "rmse": nan, "r2": nan, "mean_label": nan, "mean_prediction": nan, "rows": 0.0}
    error = p_arr - y_arr
    spread = float(np.sum((y_arr - y_arr.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(1.0 - np.sum(error**2) / spread) if spread > 0 else float("nan"),
        "mean_label": float(y_arr.mean()),
        "mean_prediction": float(p_arr.mean()),
        "rows": float(len(y_arr)),
    }
