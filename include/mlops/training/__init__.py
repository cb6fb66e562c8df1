"""Training: build, validate, split, search, fit, evaluate and check a model, given its spec.

No Airflow, no MLflow: every step is a plain function of frames, :class:`~mlops.training.params.TrainParams`
and a :class:`~mlops.spec.model.ModelSpec` (the label, the task, the search ranges, the gate metric
and its direction, the label and behavioural checks; default: the flight-delay spec,
:mod:`mlops.flight_delay.model`), so ``train_model``, ``mlops reproduce``, the benchmarks and the
unit tests run the same code for every model (``docs/specs.md``).

Time discipline ("as of"): a run trains *as of* a date ``D`` (the DAG's data interval end, or a
retrain request's as-of, floored to its UTC date) and sees the curated days ``[D - window_days, D)``
only, as local (New York) days. The holdout is the latest ``holdout_days`` of the window; the search
validates on the ``holdout_days`` just before it, so the holdout is used once, to score the refit
challenger and the champion on the same rows.

Determinism: same as-of + params + data => the same model, bit for bit: rows are sorted by
the spec's (time, id) columns (``sched_dep_ts``, ``flight_id`` for flights), categories are fixed (the feature set's ``categorical_dtypes``),
candidates are drawn from ``numpy.random.default_rng(seed)``, and XGBoost runs ``hist`` with a fixed
``seed`` and ``nthread``. ``mlops reproduce`` relies on it and compares holdout predictions exactly.

Modules, from the sequence down to its parts:

* :mod:`mlops.training.run` - :class:`~mlops.training.run.TrainingRun`, built once by
  ``train_model.plan`` and handed down the chain (params, window, paths, the fitted candidate's
  save/load); :func:`~mlops.training.run.refit` and :func:`~mlops.training.run.train` (the whole
  training in one process);
* :mod:`mlops.training.search` - the hyperparameter candidates, one candidate scored, the best one;
* :mod:`mlops.training.behaviour` - behavioural checks (invariance, direction, monotonicity, range) of a model;
* :mod:`mlops.training.validation` - the training set's checks before anything is trained;
* :mod:`mlops.training.model` - :class:`~mlops.training.model.DelayModel` (booster, columns,
  categories) and fitting one booster;
* :mod:`mlops.training.metrics` - a classifier's ROC-AUC, PR-AUC, log loss, Brier score; a
  regressor's MAE, RMSE, R²;
* :mod:`mlops.training.split` - train / holdout and search fit / validation, by local day;
* :mod:`mlops.training.dataset` - the training set: the spec's frame (Feast-backed:
  :func:`~mlops.training.dataset.feast_frame`) with its manifest, saved, loaded;
* :mod:`mlops.training.params` - :class:`~mlops.training.params.TrainParams`, the
  :class:`~mlops.training.params.Window` and the as-of date of a run.
"""
