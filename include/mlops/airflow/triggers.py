"""Async triggers (run in the triggerer) for the landing zone.

:class:`LandingFileTrigger` is the ``file://`` counterpart of the amazon provider's
``S3KeyTrigger``: it waits for a landing export to be complete without holding a worker slot.
"Complete" is :class:`mlops.ingest.landing.Completeness`: upstream's ``_SUCCESS`` marker beside the file
(``marker``), or the file unchanged in size and modification time for a while (``stable:SECONDS``),
or, with no completeness (other uses, e.g. a feature table written atomically), the file exists.
It polls with ``stat`` in a worker thread (``asyncio.to_thread``), so a slow or network file
system never blocks the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops.ingest.landing import FileWatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class LandingFileTrigger(BaseTrigger):
    """Fire once when the ``file://`` URI ``uri`` is complete.

    :param uri: ``file:///abs/path`` of the data file to wait for.
    :param poke_interval: seconds between checks.
    :param completeness: ``"marker"``, ``"stable:SECONDS"`` or ``None`` (the file exists).
    """

    def __init__(self, uri: str, poke_interval: float = 10.0, completeness: str | None = None) -> None:
        super().__init__()
        self.uri = uri
        self.poke_interval = float(poke_interval)
        self.completeness = completeness

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "uri": self.uri,
                "poke_interval": self.poke_interval,
                "completeness": self.completeness,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = FileWatch(self.uri, self.completeness)
        checks, last = 0, ""
        while True:
            checks += 1
            complete, why = await asyncio.to_thread(watch.check)
            if complete:
                self.log.info("%s complete after %d check(s): %s", self.uri, checks, why)
                yield TriggerEvent({"status": "success", "uri": self.uri})
                return
            if why != last:  # log what changed, not every poke
                self.log.info("%s: %s", self.uri, why)
                last = why
            await asyncio.sleep(self.poke_interval)
