"""Test helper: the curated weather partitions ``ingest_weather`` would have written for some days
(:func:`mlops.dev.seed.seed_weather`, shared with the benchmarks)."""

from mlops.dev.seed import seed_weather

__all__ = ["seed_weather"]
