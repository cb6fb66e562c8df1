"""Tooling, outside the domain: the demo, the embedded Airflow, benchmark glue, developer checks.

Modules:

* :mod:`mlops.dev.demo` - ``mlops demo`` and ``mlops up``;
* :mod:`mlops.dev.embedded` - the embedded Airflow (SQLite + LocalExecutor) as supervised processes;
* :mod:`mlops.dev.bench` - ``mlops bench`` (the harness lives in ``benchmarks/``);
* :mod:`mlops.dev.checks` - developer checks shared by the tests and the benchmarks.
"""
