"""The rollout guard's action: move ``@champion`` back to ``@previous`` on a breach, once (no Airflow).

:func:`roll_back` takes the verdict of :func:`mlops.monitoring.rollout_check.check` and, under the
registry's promotion lock (re-entrant: :func:`mlops.models.registry.rollback` takes it again inside
the same hold):

* re-reads both aliases: if ``@champion`` or ``@previous`` is no longer what the check compared,
  nothing moves (another run rolled back, or someone promoted meanwhile: the verdict is stale);
* refuses a ``@previous`` whose version is gone or not ``READY`` (never roll back to a missing
  model);
* calls :func:`mlops.models.registry.rollback` with ``actor="rollback-guard"``, the verdict's
  reason and ``expected_champion`` (the registry's own compare-and-set), which records both alias
  moves in the audit trail (:mod:`mlops.models.audit`).

Idempotent: a retry of the same Airflow run after its rollback finds the aliases swapped and the
audit trail's last ``@champion`` move made by this run (``context.dag_run_id``): it reports the
rollback as done (so the announcement still goes out once) without moving anything. Another run
with the same stale verdict moves nothing and says so. One breach, one rollback.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops.config import CHAMPION, MODEL_NAME, PREVIOUS, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

#: The audit trail's actor for the guard's moves.
ACTOR = "rollback-guard"


@dataclass(frozen=True)
class Outcome:
    """What :func:`roll_back` did."""

    rolled_back: bool
    reason: str
    model: str
    from_version: str | None
    to_version: str | None
    champion_after: str | None
    #: True when this run had rolled back already (a retry): nothing moved this time.
    repeated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NothingToRollBack(Exception):
    """No breach, rollbacks off, or no ``@previous``: the message says which."""


def roll_back(
    verdict: Mapping[str, Any],
    settings: Settings | None = None,
    *,
    name: str = MODEL_NAME,
    run_id: str | None = None,
) -> Outcome:
    """Roll ``@champion`` back to ``@previous`` for ``verdict`` (see the module docstring).

    ``run_id`` is the Airflow run acting (the retry rule). Raises :class:`NothingToRollBack` when
    the verdict has no breach or no ``@previous``.
    """
    from mlops.models import registry

    s = settings or get_settings()
    champion, previous = verdict.get("champion"), verdict.get("previous")
    if not verdict.get("breached"):
        raise NothingToRollBack(
            f"{name}: no breach ({verdict.get('reason', 'no verdict')}): nothing to roll back"
        )
    if not previous:
        raise NothingToRollBack(
            f"{name}: v{champion} breached ({verdict.get('reason')}) but there is no @previous version to "
            "roll back to; promote a known-good version by hand"
        )
    reason = f"rollout guard: {verdict.get('reason')}"
    with registry.promotion_lock(s, name):
        now_champion = registry.alias_version(CHAMPION, s, name)
        now_previous = registry.alias_version(PREVIOUS, s, name)
        if (now_champion, now_previous) != (champion, previous):
            done_here = run_id is not None and (now_champion, now_previous) == (previous, champion)
            if done_here and _last_champion_move_by(run_id, champion, previous, s, name):
                return Outcome(True, f"already rolled back by this run: {reason}", name, champion, previous,
                               now_champion, repeated=True)  # fmt: skip
            why = (
                f"nothing moved: the check compared @champion v{champion} with @previous v{previous}, now they "
                f"are {_v(now_champion)} and {_v(now_previous)} (rolled back or promoted since)"
            )
            log.info("%s", why)
            return Outcome(False, why, name, champion, previous, now_champion)
        _require_ready(previous, s, name)
        decision = registry.rollback(s, name, actor=ACTOR, reason=reason, expected_champion=champion)
    log.info("rollback of %s: %s", name, decision.reason)
    return Outcome(
        bool(decision.promoted), decision.reason, name, champion, previous, decision.champion_after
    )


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def _require_ready(version: str, settings: Settings, name: str) -> None:
    """``version`` exists and is ``READY`` (else a RuntimeError naming it and what to do)."""
    from mlflow.exceptions import MlflowException

    from mlops.models import registry

    try:
        status = registry.version_info(version, settings, name).status
    except MlflowException as exc:
        raise RuntimeError(
            f"{name}: @previous points at v{version}, which cannot be read ({exc}); not rolling back to it. "
            "Point @previous at a known-good version (or promote one by hand)"
        ) from exc
    if status != "READY":
        raise RuntimeError(f"{name}: @previous v{version} is {status}, not READY: not rolling back to it")


def _last_champion_move_by(run_id: str, champion: str, previous: str, settings: Settings, name: str) -> bool:
    """True if the trail's last ``@champion`` move is this guard's, by ``run_id``, ``champion`` -> ``previous``."""
    from mlops.models import audit

    moves = [e for e in audit.read(name, settings) if e.kind == audit.ALIAS_MOVED and e.alias == CHAMPION]
    if not moves:
        return False
    last = moves[-1]
    return (
        last.actor == ACTOR
        and last.from_version == str(champion)
        and last.to_version == str(previous)
        and last.context.get("dag_run_id") == run_id
    )


def announcement(verdict: Mapping[str, Any], outcome: Outcome) -> tuple[str, str]:
    """The subject and body of the rollback's announcement."""
    subject = f"[mlops] rollback {outcome.model}: v{outcome.from_version} -> v{outcome.to_version}"
    lines = [
        f"@champion of {outcome.model} moved back from v{outcome.from_version} to v{outcome.to_version} "
        f"by the rollout guard.",
        "",
        "Why:",
        *[f"- {b['message']}" for b in verdict.get("breaches", [])],
        "",
        f"Outcome: {outcome.reason}",
        "",
        "Audit trail: mlops audit --model " + outcome.model,
    ]
    notes = verdict.get("notes") or []
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return subject, "\n".join(lines)
