"""Models: MLflow tracking, the registry and its gate, lineage, and the lifecycle at a glance.

Modules:

* :mod:`mlops.models.tracking` - a training run logged to MLflow (params, metrics, plots, lineage,
  the model);
* :mod:`mlops.models.booster_model` - the logged model's code (MLflow models-from-code): MLflow
  stores it with every version; it imports no ``mlops``, and checks the booster's sha256 on load;
* :mod:`mlops.models.registry` - register challengers, gate them against the champion (decide, then
  apply, with a human approval in between when asked), move aliases under the one registry lock
  (``move_alias``: the only writer, and it records every move);
* :mod:`mlops.models.audit` - the audit trail: every alias move and approval, one object per event in
  ``{lake}/audit/<model>/`` (``mlops audit``);
* :mod:`mlops.models.card` - the model card of a version (Markdown + JSON MLflow artifacts);
* :mod:`mlops.models.lineage` - ``mlops lineage`` and ``mlops reproduce``;
* :mod:`mlops.models.lifecycle` - champion, challenger, versions, drift history and retraining, the
  latest model card and the audit trail, for the plugin's page and the demo's summary.
"""
