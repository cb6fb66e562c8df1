"""Async triggers (run in the triggerer) for the landing zone.

:class:`LandingFileTrigger` is the ``file://`` counterpart of the amazon provider's
``S3KeyTrigger``: it waits for one file to exist without holding a worker slot. It polls with
``stat`` in a worker thread (``asyncio.to_thread``), so a slow or network file system never blocks
the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops.lake import local_path

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class LandingFileTrigger(BaseTrigger):
    """Fire once when the ``file://`` URI ``uri`` exists as a regular file.

    :param uri: ``file:///abs/path`` to wait for.
    :param poke_interval: seconds between checks.
    """

    def __init__(self, uri: str, poke_interval: float = 10.0) -> None:
        super().__init__()
        self.uri = uri
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "uri": self.uri,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        path: Path = local_path(self.uri)
        checks = 0
        while True:
            checks += 1
            if await asyncio.to_thread(path.is_file):
                self.log.info("found %s after %d check(s)", self.uri, checks)
                yield TriggerEvent({"status": "success", "uri": self.uri})
                return
            await asyncio.sleep(self.poke_interval)
