"""Flight-delay MLOps domain package."""
