"""Custom operators: thin, parse-safe adapters over ``mlops`` functions.

Each module imports only ``airflow.sdk`` and the standard library at top level; the work (and
the heavy imports) happen in ``execute()``. Import operators from their module, e.g.
``from mlops.airflow.operators.registry import RegisterModelOperator``.
"""
