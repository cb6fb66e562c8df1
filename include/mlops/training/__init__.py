"""Training: build, validate, split, search, fit, evaluate and check the flight-delay model.

No Airflow, no MLflow: every step is a plain function of frames and :class:`~mlops.training.params.TrainParams`,
so ``train_model``, ``mlops reproduce``, the benchmarks and the unit tests run the same code.

Time discipline ("as of"): a run trains *as of* a date ``D`` (the DAG's data interval end, or a
retrain request's as-of, floored to its UTC date) and sees the curated days ``[D - window_days, D)``
only, as local (New York) days. The holdout is the latest ``holdout_days`` of the window; the search
validates on the ``holdout_days`` just before it, so the holdout is used once, to score the refit
challenger and the champion on the same rows.

Determinism: same as-of + params + data => the same model, bit for bit: rows are sorted by
(``sched_dep_ts``, ``flight_id``), categories are fixed (:func:`mlops.features.compute.categorical_dtypes`),
candidates are drawn from ``numpy.random.default_rng(seed)``, and XGBoost runs ``hist`` with a fixed
``seed`` and ``nthread``. ``mlops reproduce`` relies on it and compares holdout predictions exactly.

Modules, from the sequence down to its parts:

* :mod:`mlops.training.run` - :class:`~mlops.training.run.TrainingRun`, built once by
  ``train_model.plan`` and handed down the chain (params, window, paths, the fitted candidate's
  save/load); :func:`~mlops.training.run.refit` and :func:`~mlops.training.run.train` (the whole
  training in one process);
* :mod:`mlops.training.search` - the hyperparameter candidates, one candidate scored, the best one;
* :mod:`mlops.training.behaviour` - behavioural checks (invariance, direction, range) of a model;
* :mod:`mlops.training.validation` - the training set's checks before anything is trained;
* :mod:`mlops.training.model` - :class:`~mlops.training.model.DelayModel` (booster, columns,
  categories) and fitting one booster;
* :mod:`mlops.training.metrics` - ROC-AUC, PR-AUC, log loss, Brier score;
* :mod:`mlops.training.split` - train / holdout and search fit / validation, by local day;
* :mod:`mlops.training.dataset` - the training set: built from Feast with its manifest, saved, loaded;
* :mod:`mlops.training.params` - :class:`~mlops.training.params.TrainParams`, the
  :class:`~mlops.training.params.Window` and the as-of date of a run.
"""
