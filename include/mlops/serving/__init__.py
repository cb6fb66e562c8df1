"""The online prediction service (``mlops serve``): FastAPI over the Feast online store and ``@champion``.

It serves one model spec per process (``mlops serve --spec NAME``, default ``flight_delay``; the
spec's ``online`` adapter, :class:`mlops.serving.online.OnlineSpec`, says what a request item is and
how its features are computed). Endpoints: ``POST /predict`` (one or many items -> the spec's
prediction column, and a decision at the configured threshold for a classifier, the model
version), ``GET /health``, ``GET /metrics`` (Prometheus), OpenAPI at ``/docs`` (the spec's schema).

Modules:

* :mod:`mlops.serving.app` - the app factory and the request path (the body read as a stream,
  refused at ``max_body_bytes``);
* :mod:`mlops.serving.api_docs` - the OpenAPI description (``/docs``): the ``/predict`` route's
  statuses and body shapes, the component schemas;
* :mod:`mlops.serving.schemas` - request validation (every bad input is a clear 4xx: strict JSON
  types, ASCII codes, bounded errors and ``x-request-id``), the OpenAPI schemas;
* :mod:`mlops.serving.online` - what a spec supplies (:class:`~mlops.serving.online.OnlineSpec`)
  and the online store read directly (the flights' single-row feature path, tested equal to the
  training code, is :mod:`mlops.flight_delay.serving`);
* :mod:`mlops.serving.model` - the served version and the ``@champion`` poller (atomic swap);
* :mod:`mlops.serving.logger` - served predictions, batched to the spec's
  ``{model root}/predictions_online/ds=YYYY-MM-DD/part-<ts>-<pid>-<seq>.parquet`` off the request path,
  with the columns of batch predictions (:data:`mlops.serving.scoring.ONLINE_COLUMNS`) for ``monitor_drift``
  plus ``prediction_id``, ``alias``, ``role`` (``served`` / ``shadow``);
* :mod:`mlops.serving.rollout` - ``@challenger`` in shadow (scored off the response path, bounded
  queue, logged under the same ``prediction_id``) and as a sticky canary (``--canary-percent``);
* :mod:`mlops.serving.metrics` - the Prometheus collectors (per alias, version and role too) and
  the ASGI middleware;
* :mod:`mlops.serving.http` - uvicorn's options, with a bound on request heads (431);
* :mod:`mlops.serving.cli` - the ``mlops serve`` command;
* :mod:`mlops.serving.scoring` - batch scoring of whole days (``batch_predict``).
"""
