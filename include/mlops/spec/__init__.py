"""Specs: what a team supplies for its own feed (:mod:`mlops.spec.feed`) or model (:mod:`mlops.spec.model`)."""
