"""``mlops bench``: run the benchmark suite in ``benchmarks/harness.py`` (see its docstring)."""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

from mlops.cli import command
from mlops.config import REPO_ROOT

if TYPE_CHECKING:
    import argparse


def _args(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--only",
        nargs="+",
        metavar="SECTION",
        help="run only these sections (the others keep their latest results in the table)",
    )
    mode.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: rebuild benchmarks/README.md from the latest harness run of each section "
        "(benchmarks/results/2*.json), else its standalone results file",
    )
    p.add_argument("--days", type=int, default=30, help="days backfilled in the orchestration section")
    p.add_argument("--repeats", type=int, default=5, help="repeats for the short measurements")


@command("bench", "run the benchmark suite; results in benchmarks/results and benchmarks/README.md", _args)
def _bench(ns: argparse.Namespace) -> int:
    path = REPO_ROOT / "benchmarks" / "harness.py"
    spec = importlib.util.spec_from_file_location("benchmarks.harness", path)
    if spec is None or spec.loader is None:
        print(f"benchmark harness missing at {path}", file=sys.stderr)
        return 2
    harness = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = harness
    spec.loader.exec_module(harness)
    if ns.collect:
        harness.collect()
    else:
        harness.run(only=ns.only, days=ns.days, repeats=ns.repeats)
    return 0
