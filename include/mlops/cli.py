"""The ``mlops`` command: ``mlops demo``, ``mlops up``, ``mlops serve``, ``mlops lineage VERSION``,
``mlops reproduce VERSION``, ``mlops audit``, ``mlops bench``, and ``mlops airflow ...`` (the
embedded Airflow).

Each subcommand imports its implementation lazily, so ``mlops --help`` is instant. An error prints
one line (or a few) and exits 1; ``mlops --debug ...`` or ``MLOPS_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]
#: Printed under a one-line error: how to see the traceback.
DEBUG_HINT = "(for the traceback: mlops --debug ... or MLOPS_DEBUG=1)"
#: subcommand name -> (help, function adding its arguments, handler). Stage modules register here.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = (help, args, fn)
        return fn

    return register


@command(
    "airflow",
    "run an `airflow` command against the embedded profile (e.g. `mlops airflow dags list`)",
    lambda p: p.add_argument("airflow_args", nargs=argparse.REMAINDER),
)
def _airflow(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops.dev.embedded import environment, write_local_settings

    env = environment()
    write_local_settings(Path(env["AIRFLOW_HOME"]))  # the SQLite guard and the preload
    if ns.debug:
        env["MLOPS_DEBUG"] = "1"
    # Airflow's CLI, through mlops.airflow.airflow_cli: errors on one line, unknown conf keys refused
    # (-P: the current directory does not shadow packages).
    argv = [sys.executable, "-P", "-m", "mlops.airflow.airflow_cli", *ns.airflow_args]
    os.execve(sys.executable, argv, env)
    return 0  # pragma: no cover (execve does not return)


@command("env", "print the embedded profile's environment as shell exports")
def _env(ns: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from mlops.dev.embedded import environment, write_local_settings

    env = environment()
    write_local_settings(Path(env["AIRFLOW_HOME"]))  # the SQLite guard and the preload
    from mlops.features.feature_store import feast_env

    env.update(feast_env())  # what feature_repo/feature_store.yaml expands: the feast CLI needs it
    base = dict(os.environ)
    for key, value in sorted(env.items()):
        if base.get(key) != value or key.startswith(("AIRFLOW", "MLOPS", "MLFLOW")):
            print(f"export {key}={shlex.quote(value)}")
    return 0


def _audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="registered model (default flight_delay_xgb)")
    p.add_argument("--limit", type=int, default=None, help="only the newest N events")
    p.add_argument("--json", action="store_true", help="one JSON object per event (JSON lines)")


@command("audit", "print who moved which model alias when, from which version to which, and why", _audit_args)
def _audit(ns: argparse.Namespace) -> int:
    import json

    from mlops.config import MODEL_NAME
    from mlops.models import audit

    events = audit.read(ns.model or MODEL_NAME, limit=ns.limit)
    if ns.json:
        for event in events:
            print(json.dumps(event.as_dict(), sort_keys=True))
    elif events:
        print(audit.format_trail(events))
    else:
        known = audit.models()
        print(
            f"no alias moves recorded for {ns.model or MODEL_NAME}"
            + (f" (trails: {', '.join(known)})" if known else "")
        )
    return 0


def _load_stage_commands() -> None:
    """Import the modules that register further subcommands (each optional until it lands)."""
    import importlib

    for module in ("mlops.dev.demo", "mlops.serving.cli", "mlops.models.lineage", "mlops.dev.bench"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module and not module.startswith(str(exc.name)):
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_stage_commands()
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the traceback (also MLOPS_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, add_args, handler) in sorted(COMMANDS.items()):
        p = sub.add_parser(name, help=help_, description=help_)
        add_args(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("great_expectations", "evidently", "feast", "alembic", "urllib3", "botocore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(ns.handler(ns) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if ns.debug or debug_enabled():
            raise
        print(f"mlops {ns.command}: error: {error_message(exc)}\n{DEBUG_HINT}", file=sys.stderr)
        return 1


def debug_enabled() -> bool:
    """``MLOPS_DEBUG`` is set to a true value: show tracebacks instead of one-line errors."""
    return os.environ.get("MLOPS_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def error_message(exc: BaseException) -> str:
    """An exception as a CLI error: the project's own messages whole (they say what to do), any
    other as its type and first line (``--debug`` shows the rest)."""
    import traceback

    text = str(exc).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    package = os.path.dirname(os.path.abspath(__file__))
    if text and frames and os.path.abspath(frames[-1].filename).startswith(package + os.sep):
        return text
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
