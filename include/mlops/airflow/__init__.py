"""The only subpackage of ``mlops`` that imports Airflow: operators, assets, params, triggers.

Modules here are imported by DAG files at parse time, so they import only ``airflow.sdk`` and the
standard library at top level; heavy libraries are imported inside ``execute()``.
"""
