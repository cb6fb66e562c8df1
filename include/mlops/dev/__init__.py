"""Tooling, outside the domain: the demo, the embedded Airflow, the local scale-out stack, benchmark
glue, developer checks.

Modules:

* :mod:`mlops.dev.demo` - ``mlops demo`` and ``mlops up``;
* :mod:`mlops.dev.embedded` - the embedded Airflow (SQLite + LocalExecutor) as supervised processes;
* :mod:`mlops.dev.stack` - the scale-out topology as local processes (PostgreSQL databases, Redis,
  moto S3, MLflow server, Celery workers), for ``tests/integration/test_scaleout.py`` and the
  benchmarks; its variables come from :mod:`mlops.scaleout` (the profile's contract);
* :mod:`mlops.dev.bench` - ``mlops bench`` (the harness lives in ``benchmarks/``);
* :mod:`mlops.dev.timings` - where a run of the embedded profile spent its time (task waits and
  run times from Airflow's metadata database; ``mlops demo`` prints its top);
* :mod:`mlops.dev.checks` - developer checks shared by the tests and the benchmarks;
* :mod:`mlops.dev.seed` - curated weather for a lake filled without ``ingest_weather`` (tests,
  benchmarks).
"""
