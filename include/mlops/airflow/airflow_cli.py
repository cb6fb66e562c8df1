"""``airflow`` as ``mlops airflow`` runs it: Airflow's own CLI, with errors in a line or two.

Airflow's CLI lets every exception escape: a conf value that fails its param's schema
(``mlops airflow dags trigger train_model -c '{"learning_rate": "abc"}'``, or ``backfill create
--dag-run-conf``) prints about 45 lines of traceback before ``Invalid input for param ...``. Here
the same commands print one line naming the param, the value and what is valid, and exit 1.

It also refuses, before any run is created, a conf key the DAG does not declare (``learnng_rate``):
Airflow itself accepts unknown keys at trigger time (it validates only the declared params; a new
key becomes an unchecked param), so every DAG's first task refuses them too
(:func:`mlops.airflow.params.check_params`), whatever created the run (UI, REST, backfill).

``MLOPS_DEBUG=1`` (or ``mlops --debug airflow ...``) shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: Subcommands that take a run's conf, and the option that holds it.
_CONF_OPTIONS = {("dags", "trigger"): "conf", ("backfill", "create"): "dag_run_conf"}


def _run_conf(argv: list[str]) -> tuple[str, dict[str, Any]] | None:
    """``(dag_id, conf)`` of a ``dags trigger``/``backfill create`` command, else ``None``."""
    dest = _CONF_OPTIONS.get((argv[0], argv[1]) if len(argv) > 1 else ("", ""))
    if dest is None:
        return None
    from airflow.cli import cli_parser

    args = cli_parser.get_parser().parse_args(argv)  # a usage error exits 2, as airflow would
    raw = getattr(args, dest, None)
    option = "-c/--conf" if dest == "conf" else "--dag-run-conf"
    try:
        conf = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ValueError(
            f'{option} is not valid JSON ({exc}); pass an object, e.g. \'{{"ds": "2013-03-01"}}\''
        ) from None
    if not isinstance(conf, dict):
        raise ValueError(f"{option} must be a JSON object of params, got {raw!r}")
    return args.dag_id, conf


def _declared_params(dag_id: str) -> list[str] | None:
    """The params the DAG's latest serialized version declares (``None``: no such DAG, a DAG
    without params, which may read free-form conf, or a database Airflow will complain about)."""
    from airflow.models.serialized_dag import SerializedDagModel
    from sqlalchemy.exc import SQLAlchemyError

    try:
        dag = SerializedDagModel.get_dag(dag_id)
    except SQLAlchemyError:  # e.g. not migrated yet: Airflow's own check says what to run
        return None
    return list(dag.params) if dag is not None and len(dag.params) else None


def main(argv: list[str] | None = None) -> int:
    """Run ``airflow ARGV``; an error prints one line (``MLOPS_DEBUG=1``: the traceback)."""
    from mlops.cli import DEBUG_HINT, debug_enabled, error_message

    argv = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["airflow", *argv]
    run: tuple[str, dict[str, Any]] | None = None
    try:
        from airflow.__main__ import main as airflow_main

        from mlops.airflow.params import check_params

        if run := _run_conf(argv):
            declared = _declared_params(run[0])
            if run[1] and declared is not None:
                check_params(run[1], declared, run[0])
        airflow_main()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug_enabled():
            raise
        from mlops.airflow.params import describe_param_error

        message = describe_param_error(exc, run[0] if run else None) or error_message(exc)
        print(f"airflow {' '.join(argv[:2])}: error: {message}\n{DEBUG_HINT}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
