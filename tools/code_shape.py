"""The shape of the code at a git revision: module sizes, the longest functions, DAG file sizes.

    .venv/bin/python tools/code_shape.py [REV]        (default: the working tree)

Function length is ``end_lineno - lineno + 1`` from an ``ast`` walk (nested functions counted on
their own too), over ``include/``, ``dags/`` and ``plugins/``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("include/", "dags/", "plugins/")


def _files(rev: str | None) -> dict[str, str]:
    if rev is None:
        paths = subprocess.run(["git", "ls-files", *ROOTS], cwd=REPO, capture_output=True, text=True).stdout
        return {p: (REPO / p).read_text() for p in paths.split() if p.endswith(".py") and (REPO / p).exists()}
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, *ROOTS], cwd=REPO, capture_output=True, text=True
    ).stdout
    return {
        p: subprocess.run(["git", "show", f"{rev}:{p}"], cwd=REPO, capture_output=True, text=True).stdout
        for p in listing.split()
        if p.endswith(".py")
    }


def shape(rev: str | None) -> dict:
    files = _files(rev)
    functions = []
    for path, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((node.end_lineno - node.lineno + 1, f"{path}:{node.name}"))
    functions.sort(reverse=True)
    lines = {p: t.count("\n") for p, t in files.items()}
    return {
        "modules": sorted(lines.items(), key=lambda kv: -kv[1]),
        "functions": functions,
        "dags": {p: n for p, n in lines.items() if p.startswith("dags/")},
        "over_50": sum(1 for n, _ in functions if n > 50),
        "largest_module": max(lines.values()),
    }


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else None
    result = shape(rev)
    print(f"revision: {rev or 'working tree'}")
    print("largest modules:")
    for path, n in result["modules"][:10]:
        print(f"  {n:5d}  {path}")
    print("longest functions:")
    for n, name in result["functions"][:10]:
        print(f"  {n:5d}  {name}")
    print("DAG files:", ", ".join(f"{Path(p).stem} {n}" for p, n in sorted(result["dags"].items())))
    print(f"functions over 50 lines: {result['over_50']}")


if __name__ == "__main__":
    main()
