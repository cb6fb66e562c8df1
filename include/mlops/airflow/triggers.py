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

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from mlops.ingest.landing import FileWatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import jinja2
    from airflow.sdk import Context


class LandingFileTrigger(BaseTrigger):
    """Fire once when the ``file://`` URI ``uri`` is complete.

    :param uri: ``file:///abs/path`` of the data file to wait for.
    :param poke_interval: seconds between checks.
    :param completeness: ``"marker"``, ``"stable:SECONDS"`` or ``None`` (the file exists).
    :param end_task: end the task itself when the file is complete (``TaskSuccessEvent`` with the
        URI as the task's XCom) instead of resuming it in a worker: a sensor that starts in the
        triggerer (``LandingFileSensor(start_from_trigger=True)``) then never needs a task process.
    """

    def __init__(
        self,
        uri: str,
        poke_interval: float = 10.0,
        completeness: str | None = None,
        end_task: bool = False,
    ) -> None:
        super().__init__()
        self.uri = uri
        self.poke_interval = float(poke_interval)
        self.completeness = completeness
        self.end_task = bool(end_task)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "uri": self.uri,
                "poke_interval": self.poke_interval,
                "completeness": self.completeness,
                "end_task": self.end_task,
            },
        )

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render ``uri`` in the triggerer (a sensor that starts there) with the platform's
        partition macros: the serialized DAG the triggerer renders with has no
        ``user_defined_macros``, and the ingestion DAGs' URIs use ``mlops_partition``."""
        from mlops.airflow.params import SCORING_MACROS

        env = jinja_env or self.get_template_env()
        env.globals.update(SCORING_MACROS)
        super().render_template_fields(context, env)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = FileWatch(self.uri, self.completeness)
        checks, last = 0, ""
        while True:
            checks += 1
            complete, why = await asyncio.to_thread(watch.check)
            if complete:
                self.log.info("%s complete after %d check(s): %s", self.uri, checks, why)
                if self.end_task:
                    yield TaskSuccessEvent(xcoms={"return_value": self.uri})
                else:
                    yield TriggerEvent({"status": "success", "uri": self.uri})
                return
            if why != last:  # log what changed, not every poke
                self.log.info("%s: %s", self.uri, why)
                last = why
            await asyncio.sleep(self.poke_interval)
