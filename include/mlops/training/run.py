"""A training run: :class:`TrainingRun` (built once by ``train_model.plan`` and handed down the
chain), :func:`refit` of the best candidate and :func:`train` (the whole training in one process).

A :class:`TrainingRun` holds what every step of a run shares: the model spec (by name or import
path, :func:`mlops.spec.model.model_spec`), the params (parsed once, the spec's defaults under
the given ones), the window, where its files live
(``{lake}/training/as_of=YYYY-MM-DD/<spec>-<data key>/``: the training set,
its manifest, the validation report, the fitted candidate) and the retrain request behind it. It
travels between tasks as :meth:`TrainingRun.as_dict` (plain JSON) and comes back with
:meth:`TrainingRun.from_dict`, without re-parsing anything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.spec.model import model_spec
from mlops.training import behaviour, dataset, search, validation
from mlops.training.model import DelayModel, fit_booster
from mlops.training.params import TrainParams, Window, resolve_as_of
from mlops.training.split import split

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import date, datetime

    import pandas as pd

    from mlops.config import Settings
    from mlops.spec.model import ModelSpec

VALIDATION_FILE = "validation.json"
BOOSTER_FILE = "booster.ubj"
META_FILE = "meta.json"
PREDICTIONS_FILE = "holdout_predictions.parquet"


@dataclass
class Result:
    """A trained challenger and everything needed to log, register, gate and reproduce it."""

    model: DelayModel
    window: Window
    params: TrainParams
    best: dict[str, Any]
    scores: list[dict[str, Any]]
    metrics: dict[str, float]
    holdout_predictions: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    #: The model spec's reference (:attr:`mlops.spec.model.ModelSpec.ref`).
    spec: str = "flight_delay"

    def summary(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "best": self.best,
            "metrics": self.metrics,
            "timings": self.timings,
        }


def refit(
    frame: pd.DataFrame,
    window: Window,
    params: TrainParams,
    best: Mapping[str, Any],
    spec: ModelSpec | None = None,
) -> Result:
    """Refit the best candidate on all training days and score it on the holdout (the spec's metrics)."""
    spec = model_spec(spec)
    started = time.perf_counter()
    train_part, holdout = split(frame, window, spec)
    model = fit_booster(train_part, best, params, int(best["best_rounds"]), spec=spec)
    p = model.predict(holdout)
    preds = holdout[[spec.id_column, spec.day_column, spec.label]].copy()
    preds["prediction"] = p
    result = Result(
        model=model,
        window=window,
        params=params,
        best=dict(best),
        scores=[],
        metrics=spec.evaluate(holdout[spec.label], p),
        holdout_predictions=preds,
        spec=spec.ref,
    )
    result.timings["refit"] = round(time.perf_counter() - started, 3)
    return result


def train(
    frame: pd.DataFrame,
    params: TrainParams,
    as_of: date | datetime | str,
    on_candidate: Callable[[dict[str, Any]], None] | None = None,
    spec: ModelSpec | None = None,
) -> Result:
    """Search (sequentially), refit the best candidate, evaluate on the holdout: the whole training."""
    spec = model_spec(spec)
    window = Window.of(as_of, params)
    frame = dataset.sort_frame(frame, spec)
    started = time.perf_counter()
    scores = []
    for candidate in search.candidates(params, spec):
        score = search.score_candidate(frame, window, params, candidate, spec)
        if on_candidate:
            on_candidate(score)
        scores.append(score)
    search_seconds = time.perf_counter() - started
    result = refit(frame, window, params, search.best_candidate(scores, spec), spec)
    result.scores = scores
    result.timings["search"] = round(search_seconds, 3)
    return result


@dataclass(frozen=True)
class TrainingRun:
    """What the steps of one ``train_model`` run share (see the module docstring)."""

    params: TrainParams
    window: Window
    training_dir: str
    as_of_source: str = "param"
    #: The retrain request behind the run, as MLflow tags (``{}`` when none triggered it).
    retrain: dict[str, str] = field(default_factory=dict)
    #: The model spec's reference (:attr:`mlops.spec.model.ModelSpec.ref`).
    spec: str = "flight_delay"

    @classmethod
    def plan(
        cls,
        params: Mapping[str, Any],
        request: Mapping[str, str],
        event_timestamps: Sequence[datetime],
        data_interval_end: datetime | None,
        run_after: datetime | None,
        settings: Settings | None = None,
        spec: ModelSpec | str | None = None,
    ) -> TrainingRun:
        """Resolve the as-of date, the window and the params of a run of the model ``spec``
        (:func:`resolve_as_of`; params the caller leaves out take the spec's defaults).

        A retrain request carries its data-time as-of (the day after the drifted window): in a
        replay of 2013 the event's wall-clock timestamp would be years after the data.
        """
        model = model_spec(spec)
        train_params = TrainParams.from_mapping(params, model.estimator.defaults)
        explicit = params.get("as_of")
        as_of, source = resolve_as_of(
            explicit or request.get("retrain.as_of") or None, event_timestamps, data_interval_end, run_after
        )
        if request and not explicit:
            source = "retrain_request"
        window = Window.of(as_of, train_params)
        directory = dataset.training_dir(window, train_params, settings, model)
        return cls(train_params, window, directory, source, dict(request), model.ref)

    # -- as XCom ------------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "as_of": self.as_of,
            "as_of_source": self.as_of_source,
            "retrain": dict(self.retrain),
            "window": self.window.as_dict(),
            "params": self.params.as_dict(),
            "training_dir": self.training_dir,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingRun:
        """The inverse of :meth:`as_dict` (the params were checked when the run was planned)."""
        return cls(
            params=TrainParams(**values["params"]),
            window=Window.from_dict(values["window"]),
            training_dir=values["training_dir"],
            as_of_source=values.get("as_of_source", "param"),
            retrain=dict(values.get("retrain") or {}),
            spec=values.get("spec") or "flight_delay",
        )

    # -- paths ----------------------------------------------------------------------------------------

    @property
    def model_spec(self) -> ModelSpec:
        """The run's :class:`~mlops.spec.model.ModelSpec`."""
        return model_spec(self.spec)

    @property
    def as_of(self) -> str:
        return self.window.as_of.isoformat()

    def path(self, *parts: str) -> str:
        from mlops import lake

        return lake.join(self.training_dir, *parts)

    @property
    def training_set_uri(self) -> str:
        return self.path(dataset.TRAINING_SET_FILE)

    def candidate_dir(self, best: Mapping[str, Any]) -> str:
        return self.path(f"candidate={best['candidate']}")

    # -- the steps ------------------------------------------------------------------------------------

    def build(self, settings: Settings | None = None) -> dict[str, Any]:
        """Build and save the training set; returns its URI, rows, hashes and seconds."""
        started = time.perf_counter()
        frame, manifest = dataset.build_training_set(self.window, settings, self.model_spec)
        uri = dataset.save_training_set(frame, manifest, self.training_dir)
        return {
            "uri": uri,
            "rows": manifest["rows"],
            "data_hash": manifest["data_hash"],
            "partitions_digest": dataset.partitions_digest(manifest["partitions"]),
            "seconds": round(time.perf_counter() - started, 3),
        }

    def load_frame(self) -> pd.DataFrame:
        return dataset.load_training_set(self.training_set_uri, self.model_spec)

    def holdout(self) -> pd.DataFrame:
        return split(self.load_frame(), self.window, self.model_spec)[1]

    def read_manifest(self) -> dict[str, Any]:
        from mlops import lake

        return json.loads(lake.read_text(self.path(dataset.MANIFEST_FILE)))

    def validate(self) -> dict[str, Any]:
        """Validate the saved training set, write ``validation.json``; raises
        :class:`~mlops.training.validation.TrainingSetInvalid` when a check failed."""
        from mlops import lake

        started = time.perf_counter()
        frame = self.load_frame()
        report = validation.validate_training_set(
            frame, self.window, self.params, self.read_manifest(), self.model_spec
        )
        report["seconds"] = round(time.perf_counter() - started, 3)
        lake.write_text(self.path(VALIDATION_FILE), json.dumps(report, indent=2))
        validation.require_valid(report, self.window)
        return report

    def candidates(self) -> list[dict[str, Any]]:
        return search.candidates(self.params, self.model_spec)

    def score(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        return search.score_candidate(self.load_frame(), self.window, self.params, candidate, self.model_spec)

    def refit(self, scores: Sequence[Mapping[str, Any]]) -> Result:
        """Refit the best of the search's ``scores`` on all training days (see :func:`refit`)."""
        spec = self.model_spec
        best = search.best_candidate(list(scores), spec)
        result = refit(self.load_frame(), self.window, self.params, best, spec)
        result.scores = [dict(s) for s in scores]
        return result

    def behavioural_checks(self, model: DelayModel, holdout: pd.DataFrame) -> list[dict[str, Any]]:
        return behaviour.behavioural_checks(
            model.predict, holdout, model.features, seed=self.params.seed, spec=self.model_spec
        )

    # -- the fitted candidate -----------------------------------------------------------------------

    def save_candidate(self, result: Result) -> dict[str, Any]:
        """Write the refit model and its holdout predictions; returns what :meth:`load_candidate` needs."""
        from mlops import lake

        directory = self.candidate_dir(result.best)
        booster, meta = result.model.to_bytes()
        lake.write_bytes(lake.join(directory, BOOSTER_FILE), booster)
        lake.write_text(lake.join(directory, META_FILE), meta)
        lake.write_parquet(lake.join(directory, PREDICTIONS_FILE), result.holdout_predictions)
        return {
            "dir": directory,
            "best": result.best,
            "metrics": result.metrics,
            "seconds": result.timings["refit"],
        }

    def load_candidate(self, fitted: Mapping[str, Any], scores: Sequence[Mapping[str, Any]]) -> Result:
        """The :class:`Result` that :meth:`save_candidate` wrote (``fitted`` is what it returned)."""
        from mlops import lake

        directory = fitted["dir"]
        model = DelayModel.from_bytes(
            lake.read_bytes(lake.join(directory, BOOSTER_FILE)),
            lake.read_text(lake.join(directory, META_FILE)),
        )
        return Result(
            model=model,
            window=self.window,
            params=self.params,
            best=dict(fitted["best"]),
            scores=[dict(s) for s in scores],
            metrics=dict(fitted["metrics"]),
            holdout_predictions=lake.read_parquet(lake.join(directory, PREDICTIONS_FILE)),
            timings={"refit": fitted["seconds"]},
            spec=self.spec,
        )


def stage_timings(
    built: Mapping[str, Any],
    report: Mapping[str, Any],
    scores: Sequence[Mapping[str, Any]],
    fitted: Mapping[str, Any],
) -> dict[str, float]:
    """Seconds of each stage of a ``train_model`` run (logged as ``time_<stage>_s`` metrics)."""
    return {
        "build_training_set": built["seconds"],
        "validate": report["seconds"],
        "search_candidates_total": round(sum(s["seconds"] for s in scores), 3),
        "refit": fitted["seconds"],
    }
