"""Features: point-in-time feature tables from the curated lake, and the Feast store over them.

Modules:

* :mod:`mlops.features.compute` - the feature tables (plain pandas: route and carrier statistics,
  weather, the label), tested leak-free;
* :mod:`mlops.features.feature_store` - Feast: configuration, ``apply``, materialization and
  ``get_historical_features`` through the feature service;
* :mod:`mlops.features.feast_duckdb` - Feast's DuckDB offline store with partition pruning and S3
  without downloads.
"""
