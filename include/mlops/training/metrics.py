"""The model's scores on labelled rows: ROC-AUC, PR-AUC, log loss, Brier score, base rates."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


def evaluate(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> dict[str, float]:
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
