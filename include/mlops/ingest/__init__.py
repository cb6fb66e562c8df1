"""Ingest: a day's landing export -> validated, curated lake partition, or quarantine.

Modules:

* :mod:`mlops.ingest.landing` - when a landing export is complete (the ``_SUCCESS`` contract);
* :mod:`mlops.ingest.steps` - the two idempotent steps of ``ingest_flights``: validate, then publish
  or quarantine;
* :mod:`mlops.ingest.validation` - the Great Expectations suite, its outcome and its reports;
* :mod:`mlops.ingest.expectations` - the suite's custom (table-level) GX metrics and expectations;
* :mod:`mlops.ingest.semantics` - what the values mean (clock fields, cross-column relations, a
  normal day's shape), the suite's custom checks;
* :mod:`mlops.ingest.normalize` - raw export -> curated columns (pure, deterministic);
* :mod:`mlops.ingest.simulator` - the upstream system, simulated: replays 2013 onto any day.
"""
