"""Raw upstream export -> curated partition, for any feed: the feed spec's ``normalize``.

Each feed supplies its own normalization (:attr:`mlops.spec.feed.FeedSpec.normalize`, pure and
deterministic: the same raw frame always gives the same curated frame, row order included); this
module is the one entry point the platform and its callers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec.feed import FeedSpec


def normalize(raw: pd.DataFrame, feed: FeedSpec | str | None = None) -> pd.DataFrame:
    """Normalize a raw daily export of ``feed`` (a spec, a registered name or an import path; the
    default feed of :func:`mlops.spec.feed.feed_spec` when ``None``) into its curated columns."""
    from mlops.spec.feed import feed_spec

    return feed_spec(feed).normalized(raw)
