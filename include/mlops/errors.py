"""Domain exceptions that say whether retrying can help (no Airflow here).

- :class:`PermanentError`: a retry cannot fix it (permission denied, a read-only or full file
  system, bytes that changed after they were validated); a person must act, and the message says
  what. The Airflow adapters (:mod:`mlops.airflow.runtime`) turn it into ``AirflowFailException``,
  so the task fails at once instead of retrying the same failure.
- :class:`TransientError`: the condition will likely pass by itself (upstream is still writing);
  an ordinary exception for Airflow, which retries it per the task's ``retries``.

Any other exception keeps Airflow's default: retried.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot fix this failure: the message names what is wrong and what to do."""


class TransientError(Exception):
    """Retrying later is expected to succeed (the message says what is being waited for)."""
