"""The audit trail of a registered model: every alias move and every approval decision, durable.

One event is one JSON object in the lake, written once and never rewritten:

``{lake}/audit/<model>/<time_ns>-<id>.json`` (:func:`mlops.layout.audit_dir`)

so two writers can never lose each other's event (no read-modify-write of a shared file), a crash
leaves either the whole event or none (:func:`mlops.lake.write_bytes` is atomic), and the trail
survives restarts on both profiles (a local directory in the embedded profile, S3 in the
scale-out one). :func:`read` is the one reader: ``mlops audit`` and the lifecycle page use it.

Events (:class:`Event`):

* ``alias_moved`` - an alias (``champion``, ``challenger``, ``previous``) moved from one version
  (or none) to another. Written by :func:`mlops.models.registry.move_alias` (the only function that
  moves an alias, under the promotion lock) right after the move;
* ``approval`` - a human (or the timeout) decided on a challenger the gate would promote
  (``decision`` ``promote`` / ``reject``), written by the approval step of ``train_model``.

``actor`` says who or what acted: ``gate`` (the automatic gate), ``register`` (a new version
becomes ``@challenger``), ``approver:<name>`` (a person who answered the approval),
``rollback-guard`` (the automatic rollback), ``cli:<user>`` or ``manual:<name>`` (a person at a
terminal or a script), ``timeout`` (an approval nobody answered in time).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.config import MODEL_NAME, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Event kinds.
ALIAS_MOVED = "alias_moved"
APPROVAL = "approval"
KINDS = (ALIAS_MOVED, APPROVAL)

#: Actor kinds: a bare kind, or ``kind:<name>`` for the ones that name a person.
ACTOR_KINDS = ("gate", "register", "rollback-guard", "timeout", "approver", "cli", "manual")
_NAMED = ("approver", "cli", "manual")
_ACTOR = re.compile(r"^(?P<kind>[a-z-]+)(?::(?P<who>[^\s:][^\n]{0,199}))?$")


def check_actor(actor: str) -> str:
    """``actor`` as given if well formed, else a ValueError saying which forms are accepted."""
    match = _ACTOR.match(actor or "")
    kind = match["kind"] if match else None
    named = bool(match and match["who"])
    if kind not in ACTOR_KINDS or named != (kind in _NAMED):
        raise ValueError(
            f"audit actor {actor!r} is not one of: gate, register, rollback-guard, timeout, "
            "approver:<name>, cli:<user>, manual:<name> (say who or what moved the alias)"
        )
    return actor


@dataclass(frozen=True)
class Event:
    """One audited event (see the module docstring)."""

    kind: str
    model: str
    actor: str
    reason: str
    at: str  # ISO 8601 UTC, microseconds
    alias: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    version: str | None = None  # the version an approval is about
    decision: str | None = None  # an approval's answer
    run_id: str | None = None  # the MLflow run of the version moved to / decided on
    context: dict[str, Any] = field(default_factory=dict)  # e.g. the Airflow dag_id / run_id
    id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        """One line: ``when  alias  vA -> vB  actor  reason``."""
        if self.kind == ALIAS_MOVED:
            what = f"@{self.alias:<10} {_v(self.from_version):>5} -> {_v(self.to_version):<5}"
        else:
            what = f"{'approval':<11} {_v(self.version):>5} => {self.decision or '':<7}"
        return f"{self.at}  {what}  {self.actor:<20}  {self.reason}"


def _v(version: str | None) -> str:
    return f"v{version}" if version else "-"


def _now() -> tuple[int, str]:
    ns = time.time_ns()
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return ns, f"{stamp}.{rest // 1000:06d}Z"


#: Environment variables Airflow sets in a task's process (``context_to_airflow_vars``).
_AIRFLOW_ENV = {
    "dag_id": "AIRFLOW_CTX_DAG_ID",
    "dag_run_id": "AIRFLOW_CTX_DAG_RUN_ID",
    "task_id": "AIRFLOW_CTX_TASK_ID",
    "try_number": "AIRFLOW_CTX_TRY_NUMBER",
}


def airflow_context() -> dict[str, str]:
    """The Airflow task this process runs, if any (from the environment Airflow sets)."""
    import os

    return {key: os.environ[var] for key, var in _AIRFLOW_ENV.items() if os.environ.get(var)}


def record(
    kind: str,
    *,
    actor: str,
    reason: str,
    model: str = MODEL_NAME,
    alias: str | None = None,
    from_version: str | None = None,
    to_version: str | None = None,
    version: str | None = None,
    decision: str | None = None,
    run_id: str | None = None,
    context: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> Event:
    """Write one event to the trail of ``model`` (one new object; never rewrites one). Returns it."""
    from mlops import lake, layout

    if kind not in KINDS:
        raise ValueError(f"audit event kind {kind!r}: use one of {KINDS}")
    check_actor(actor)
    if not (reason or "").strip():
        raise ValueError(f"audit event of {model} by {actor}: a reason is required (say why)")
    if kind == ALIAS_MOVED and not (alias and to_version):
        raise ValueError("an alias_moved event needs the alias and the version it moved to")
    s = settings or get_settings()
    ns, at = _now()
    event = Event(
        kind=kind,
        model=model,
        actor=actor,
        reason=reason.strip()[:4000],
        at=at,
        alias=alias,
        from_version=None if from_version is None else str(from_version),
        to_version=None if to_version is None else str(to_version),
        version=None if version is None else str(version),
        decision=decision,
        run_id=run_id,
        context={**airflow_context(), **(context or {})},
        id=uuid.uuid4().hex[:12],
    )
    uri = lake.join(layout.audit_dir(s.lake_uri, model), f"{ns:020d}-{event.id}.json")
    lake.write_text(uri, json.dumps(event.as_dict(), sort_keys=True))
    return event


def read(
    model: str = MODEL_NAME,
    settings: Settings | None = None,
    *,
    limit: int | None = None,
) -> list[Event]:
    """The trail of ``model``, oldest first (``limit``: only the newest that many)."""
    from mlops import lake, layout

    s = settings or get_settings()
    uris = [u for u in lake.list_uris(layout.audit_dir(s.lake_uri, model)) if u.endswith(".json")]
    if limit is not None:
        uris = uris[-limit:] if limit > 0 else []
    events = []
    for uri in uris:  # names sort by time: read in order
        try:
            events.append(Event.from_dict(json.loads(lake.read_text(uri))))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"audit event {uri} is not a valid event ({exc}); move it aside") from exc
    return events


def models(settings: Settings | None = None) -> list[str]:
    """The models that have a trail."""
    from mlops import lake, layout

    s = settings or get_settings()
    root = layout.audit_root(s.lake_uri)
    names = {u[len(root) + 1 :].split("/", 1)[0] for u in lake.list_uris(root)}
    return sorted(n for n in names if n)


def format_trail(events: Iterable[Event]) -> str:
    """The trail as text, one event a line (``mlops audit``)."""
    lines = [e.summary() for e in events]
    return "\n".join(lines) if lines else "(no alias moves recorded yet)"
