"""Champion vs challenger on shadow traffic: the online prediction log, paired by prediction id.

``mlops serve`` logs, for every flight it scores while ``@challenger`` differs from the champion,
one row per model under the flight's ``prediction_id`` (``role`` ``served`` for the answer,
``shadow`` for the other model; see :mod:`mlops.serving.rollout`). Here the two rows of each id
become one pair, and the pairs of each (champion version, challenger version) are summarised
(:class:`ShadowComparison`):

* ``pairs`` - flights scored by both (``canary_pairs`` of them answered by the challenger);
* ``agreement_rate`` - share of pairs with the same decision (each row's own threshold);
* ``mean_score_diff`` - mean of challenger minus champion probability (``mean_abs_score_diff``:
  of its absolute value);
* ``champion_roc_auc`` / ``challenger_roc_auc`` - once labels exist in the curated lake
  (``is_delayed`` of the flight; cancelled flights have none), on the same ``labelled`` pairs;
  None until both classes are present.

:func:`pairs` and :func:`compare` are pure (frames in, numbers out); :func:`shadow_summary` reads
the log and the labels of some days (the lifecycle page calls it).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import CHALLENGER, CHAMPION
from mlops.schema import LABEL

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from mlops.config import Settings

log = logging.getLogger(__name__)

_DS = re.compile(r"/ds=(\d{4}-\d{2}-\d{2})/")

#: Columns of the log a pair needs.
LOG_COLUMNS = [
    "prediction_id",
    "alias",
    "role",
    "model_version",
    "delay_probability",
    "predicted_delayed",
    "flight_id",
    "ds",
    "served_at",
]


@dataclass
class ShadowComparison:
    """Champion vs challenger over the pairs of one version pair."""

    champion_version: str
    challenger_version: str
    pairs: int
    canary_pairs: int
    agreement_rate: float | None
    mean_score_diff: float | None
    mean_abs_score_diff: float | None
    labelled: int
    champion_roc_auc: float | None
    challenger_roc_auc: float | None
    first_served_at: str | None
    last_served_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pairs(log_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per prediction id scored by both aliases.

    Columns: ``prediction_id``, ``flight_id``, ``ds``, ``served_at``, ``served_alias`` and, for
    each of ``champion``/``challenger``: ``<alias>_version``, ``<alias>_probability``,
    ``<alias>_delayed``. Rows without a prediction id (logs written before shadow existed) and ids
    with one model only are left out.
    """
    import pandas as pd

    lacking = [c for c in LOG_COLUMNS if c not in log_frame.columns]
    if lacking:
        raise ValueError(
            f"the online prediction log lacks {lacking}: it was written before shadow scoring "
            "(mlops serve logs prediction_id, alias and role); serve with a challenger to collect pairs"
        )
    rows = log_frame[LOG_COLUMNS]
    rows = rows[rows["prediction_id"].notna() & (rows["prediction_id"].astype(str) != "")]
    rows = rows[rows["alias"].isin([CHAMPION, CHALLENGER])]
    sides = {}
    for alias in (CHAMPION, CHALLENGER):
        side = rows[rows["alias"] == alias].drop_duplicates("prediction_id", keep="last")
        sides[alias] = side.set_index("prediction_id")
    both = sides[CHAMPION].index.intersection(sides[CHALLENGER].index)
    champion, challenger = sides[CHAMPION].loc[both], sides[CHALLENGER].loc[both]
    served = champion["role"].astype(str).eq("served")
    out = pd.DataFrame(
        {
            "prediction_id": both,
            "flight_id": champion["flight_id"].astype(str).to_numpy(),
            "ds": champion["ds"].astype(str).to_numpy(),
            "served_at": champion["served_at"].to_numpy(),
            "served_alias": [CHAMPION if s else CHALLENGER for s in served],
        }
    )
    for alias, side in ((CHAMPION, champion), (CHALLENGER, challenger)):
        out[f"{alias}_version"] = side["model_version"].astype(str).to_numpy()
        out[f"{alias}_probability"] = side["delay_probability"].astype("float64").to_numpy()
        out[f"{alias}_delayed"] = side["predicted_delayed"].astype(bool).to_numpy()
    return out.reset_index(drop=True)


def _auc(labels: Any, scores: Any) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    return round(float(roc_auc_score(labels, scores)), 6)


def _stamp(value: Any) -> str | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def compare(log_frame: pd.DataFrame, labels: pd.DataFrame | None = None) -> list[ShadowComparison]:
    """:class:`ShadowComparison` of each (champion, challenger) version pair in the log.

    ``labels``: ``flight_id`` and ``is_delayed`` (the curated lake's; nulls are flights without a
    label, e.g. cancelled). Without labels, or with one class only, the ROC-AUCs are None.
    """
    paired = pairs(log_frame)
    if labels is not None and len(labels) and len(paired):
        known = labels.dropna(subset=[LABEL]).drop_duplicates("flight_id", keep="last")
        label_of = dict(zip(known["flight_id"].astype(str), known[LABEL].astype(int), strict=True))
    else:
        label_of = {}
    out = []
    for (champ, chall), group in paired.groupby(["champion_version", "challenger_version"], sort=True):
        diff = group["challenger_probability"] - group["champion_probability"]
        y = group["flight_id"].map(label_of)
        has = y.notna()
        labelled = group[has]
        y_known = y[has].astype(int).tolist()
        n = len(group)
        out.append(
            ShadowComparison(
                champion_version=str(champ),
                challenger_version=str(chall),
                pairs=n,
                canary_pairs=int((group["served_alias"] == CHALLENGER).sum()),
                agreement_rate=round(
                    float((group["champion_delayed"] == group["challenger_delayed"]).mean()), 6
                )
                if n
                else None,
                mean_score_diff=round(float(diff.mean()), 6) if n else None,
                mean_abs_score_diff=round(float(diff.abs().mean()), 6) if n else None,
                labelled=len(labelled),
                champion_roc_auc=_auc(y_known, labelled["champion_probability"]) if len(labelled) else None,
                challenger_roc_auc=_auc(y_known, labelled["challenger_probability"])
                if len(labelled)
                else None,
                first_served_at=_stamp(group["served_at"].min()),
                last_served_at=_stamp(group["served_at"].max()),
            )
        )
    return out


def read_log(days: Sequence[str], settings: Settings) -> pd.DataFrame:
    """The online prediction log of ``days`` (every part file; days without one contribute nothing)."""
    import pandas as pd

    frames = []
    for ds in days:
        folder = layout.predictions_online_dir(settings.lake_uri, ds)
        for uri in sorted(lake.list_uris(folder)):
            if uri.endswith(".parquet"):
                frames.append(lake.read_parquet(uri))
    if not frames:
        return pd.DataFrame(columns=LOG_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def read_labels(days: Sequence[str], settings: Settings) -> pd.DataFrame:
    """``flight_id`` and ``is_delayed`` of the curated partitions of ``days`` that exist."""
    import pandas as pd

    frames = []
    for ds in days:
        uri = layout.curated_file(settings.lake_uri, ds)
        if lake.exists(uri):
            frames.append(lake.read_parquet(uri, columns=["flight_id", LABEL]))
    if not frames:
        return pd.DataFrame({"flight_id": pd.Series(dtype="string"), LABEL: pd.Series(dtype="Int8")})
    return pd.concat(frames, ignore_index=True)


def recent_days(settings: Settings, limit: int = 7) -> list[str]:
    """The newest ``limit`` days (``ds``) that have an online prediction log, oldest first."""
    root = layout.predictions_online_root(settings.lake_uri)
    days = {m.group(1) for uri in lake.list_uris(root) if (m := _DS.search(uri))}
    return sorted(days)[-limit:] if limit > 0 else []


def shadow_summary(days: Sequence[str], settings: Settings) -> list[dict[str, Any]]:
    """:func:`compare` on the log and the curated labels of ``days`` (dicts, for pages and JSON)."""
    frame = read_log(days, settings)
    if frame.empty:
        return []
    result = [c.as_dict() for c in compare(frame, read_labels(days, settings))]
    for c in result:
        for key in ("champion_roc_auc", "challenger_roc_auc"):
            if c[key] is not None and math.isnan(c[key]):
                c[key] = None
    return result
