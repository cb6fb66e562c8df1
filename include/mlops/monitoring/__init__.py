"""Drift and performance monitoring of ``@champion``, and the storm guard of the retraining trigger.

No Airflow here: ``monitor_drift`` (and :class:`mlops.airflow.operators.drift.DriftCheckOperator`)
call :func:`mlops.monitoring.check.check` and :func:`mlops.monitoring.guard.guarded_request`; the
unit tests call the parts with small frames. Imports run one way: ``check`` imports the parts,
``guard`` imports ``history``; no part imports ``check``.

Modules:

* :mod:`mlops.monitoring.params` - :class:`DriftParams` (windows, sampling, thresholds, cooldown;
  the keys of ``mlops.airflow.params.DRIFT_PARAMS``) and the check's window of days;
* :mod:`mlops.monitoring.statistics` - the comparison, pure: sampling, feature drift (Evidently
  ``DataDriftPreset``: Wasserstein / Jensen-Shannon), prediction drift against the champion's
  holdout, the performance of the rows whose labels had arrived (the model spec's task: ROC-AUC
  and calibration, or MAE/RMSE/R²), the breaches (``run_check`` chains them);
* :mod:`mlops.monitoring.frames` - the two sides of a model spec's champion: its saved training
  set (or the spec's frame), the current window's flights with their batch predictions or scored
  in the task;
* :mod:`mlops.monitoring.report` - the HTML page (Evidently's widgets) and the JSON snapshots;
* :mod:`mlops.monitoring.history` - ``{lake}/reports/drift/``: the day's report folder, the history
  table (one row per checked day) and the request ledger;
* :mod:`mlops.monitoring.guard` - the storm guard: the lock, the rules that suppress a request
  (rerun, stale check, cooldowns, repeated signature, training already running), the decision
  recorded in the ledger, the ``retrain_request`` event metadata;
* :mod:`mlops.monitoring.mlflow_runs` - one MLflow run per checked day (the spec's monitoring
  experiment, ``flight-delay-monitoring`` for the flight-delay model);
* :mod:`mlops.monitoring.check` - the daily check's sequence: sides, comparison, reports, MLflow,
  history row;
* :mod:`mlops.monitoring.rollout` - the rollout guard's comparison, pure: ``/metrics`` snapshots
  and the intervals each version alone answered (error rate, p99), the paired online ROC-AUC of
  ``@champion`` and ``@previous`` on the same served flights, the thresholds and the verdict;
* :mod:`mlops.monitoring.rollout_check` - the rollout guard's check: scrape and keep ``/metrics``,
  read the online prediction log and the arrived labels, score them with ``@previous``, judge;
* :mod:`mlops.monitoring.rollback` - the rollout guard's action: ``@champion`` back to ``@previous``
  under the promotion lock, once per breach, recorded in the audit trail;
* :mod:`mlops.monitoring.shadow` - champion vs challenger on shadow traffic: the online prediction
  log paired by ``prediction_id`` (agreement, score difference, ROC-AUC once labels arrive), for
  the lifecycle page.

The ``retrain_request`` event behind a ``train_model`` run is read by
:func:`mlops.airflow.events.request_context`.
"""
