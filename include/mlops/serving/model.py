"""The served model: a registered version loaded for fast scoring, and the holder that swaps it.

:class:`ServedModel` wraps the XGBoost booster of a registered ``flight_delay_xgb`` version. It
scores rows of :func:`mlops.serving.online.feature_row` by building the float matrix the booster
was trained on (categories as their code in the model's own category list, unknown -> missing)
and calling ``Booster.inplace_predict``: the same probabilities as
``mlops.training.model.DelayModel.predict`` on a ``model_frame`` (checked by the tests), without a
pandas frame and a ``DMatrix`` per request.

:class:`ModelHolder` polls the ``@champion`` alias every ``poll_seconds``. When it moves, the new
version is loaded and warmed up *beside* the current one, then published with one reference
assignment (atomic under the GIL). A request reads :attr:`ModelHolder.current` once and scores
with that object to the end, so requests in flight during a swap finish on the version they
started with and none fails. A version that fails to load is not published: the current one keeps
serving, the error shows in ``/health`` and the metrics, and the next poll retries.

:func:`load_version` reads a version's booster and metadata files straight from the registry
(nothing is unpickled, no code from the artifact store runs) and checks their sha256 against the
hashes recorded when the version was logged (:func:`mlops.models.booster_model.read_version_files`,
the repository's copy): a changed file fails the load with the version, the file, and both hashes.
Versions logged before hashes were recorded (a cloudpickled class) load unverified, with a warning.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.config import CHAMPION, MODEL_NAME

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np

    from mlops.config import Settings
    from mlops.models.booster_model import Booster
    from mlops.serving.sidecar import Sidecar
    from mlops.training.model import DelayModel

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One loaded model version, ready to score feature rows."""

    name: str
    version: str
    features: list[str]
    categories: dict[str, list[str]]
    booster: Any  # xgboost.Booster
    loaded_at: float = field(default_factory=time.time)
    tags: dict[str, str] = field(default_factory=dict)
    load_seconds: float = 0.0
    #: sha256 of the booster file, and whether it matched the hash recorded at log time.
    booster_sha256: str = ""
    verified: bool = False

    def __post_init__(self) -> None:
        self._codes = {
            col: {v: float(i) for i, v in enumerate(cats)} for col, cats in self.categories.items()
        }
        self._columns = [(col, self._codes.get(col)) for col in self.features]

    @classmethod
    def from_delay_model(
        cls,
        model: DelayModel | Booster,
        *,
        name: str,
        version: str,
        tags: Mapping[str, str] | None = None,
    ) -> ServedModel:
        booster = model.booster.copy()
        booster.set_param({"nthread": 1})  # one row: threads cost more than they give
        return cls(
            name=name,
            version=str(version),
            features=list(model.features),
            categories={k: list(v) for k, v in model.categories.items()},
            booster=booster,
            tags=dict(tags or {}),
        )

    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's input matrix for feature rows (missing features and unknown categories: NaN)."""
        import numpy as np

        out = np.full((len(rows), len(self._columns)), np.nan, dtype=np.float64)
        for i, row in enumerate(rows):
            for j, (col, codes) in enumerate(self._columns):
                value = row.get(col)
                if value is None:
                    continue
                if codes is not None:
                    code = codes.get(value)
                    if code is not None:
                        out[i, j] = code
                elif not (isinstance(value, float) and math.isnan(value)):
                    out[i, j] = value
        return out

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """P(arrival delay >= 15 min) per feature row."""
        import numpy as np

        if not rows:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.inplace_predict(self.matrix(rows)), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "load_seconds": round(self.load_seconds, 3),
            "as_of": self.tags.get("mlops.as_of"),
            "feature_service": self.tags.get("mlops.feature_service"),
            "features": len(self.features),
            "booster_sha256": self.booster_sha256,
            "verified": self.verified,
        }


def load_version(version: str, settings: Settings | None = None, name: str = MODEL_NAME) -> ServedModel:
    """Load a registered version from MLflow, its booster checked against the recorded sha256.

    Raises :class:`mlops.models.booster_model.ArtifactHashError` naming the version, the file and
    the expected and actual hashes when a file changed after logging.
    """
    import tempfile

    import mlflow.artifacts

    from mlops.models import booster_model, registry
    from mlops.models.tracking import client

    started = time.perf_counter()
    client(settings)  # the profile's tracking and registry URIs
    what = f"{name} version {version}"
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        booster, meta, verified = booster_model.read_version_files(local, what)
    if not verified:
        log.warning(
            "%s was logged before booster hashes were recorded (a cloudpickled class): serving it "
            "unverified; retrain it to get a portable, verified version",
            what,
        )
    model = booster_model.Booster.from_bytes(booster, meta)
    try:
        tags = dict(registry.version_info(version, settings, name).tags or {})
    except Exception:  # tags are informative only; the model itself loaded
        log.warning("could not read the tags of %s v%s", name, version, exc_info=True)
        tags = {}
    served = ServedModel.from_delay_model(model, name=name, version=version, tags=tags)
    served.booster_sha256 = booster_model.sha256_bytes(booster)
    served.verified = verified
    served.load_seconds = time.perf_counter() - started
    return served


class ModelHolder:
    """Holds the served model; follows ``@alias`` by polling, swapping atomically when it moves.

    ``resolve()`` returns the version the alias points at (or None); ``load(version)`` returns a
    :class:`ServedModel`. Both default to the MLflow registry of the profile. With a ``sidecar``
    (:mod:`mlops.serving.sidecar`, the service's default) the alias is looked up in that child
    process: a lookup is ~4 ms of MLflow/SQLAlchemy CPU that would otherwise hold the serving
    process's GIL against requests at every poll. Loading a new version stays here (it is rare).
    """

    def __init__(
        self,
        *,
        poll_seconds: float = 10.0,
        alias: str = CHAMPION,
        name: str = MODEL_NAME,
        settings: Settings | None = None,
        resolve: Callable[[], str | None] | None = None,
        load: Callable[[str], ServedModel] | None = None,
        warmup_row: Mapping[str, Any] | None = None,
        on_swap: Callable[[ServedModel | None, ServedModel], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        sidecar: Sidecar | None = None,
    ) -> None:
        from mlops.models import registry

        self.poll_seconds = float(poll_seconds)
        self.alias = alias
        self.name = name
        if resolve is None and sidecar is not None:
            resolve = functools.partial(
                sidecar.call, "mlops.models.registry:alias_version", alias, settings, name
            )
        self._resolve = resolve or (lambda: registry.alias_version(alias, settings, name))
        self._load = load or (lambda v: load_version(v, settings, name))
        self._warmup_row = dict(warmup_row or {})
        self.on_swap = on_swap
        self.on_error = on_error
        self._current: ServedModel | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll: float | None = None
        self.last_error: str | None = None
        self.alias_version: str | None = None
        self.swaps = 0

    @property
    def current(self) -> ServedModel | None:
        """The model to score with. Read it once per request and keep the reference."""
        return self._current

    def refresh(self) -> bool:
        """Resolve the alias; load, warm up and publish a new version. True when it swapped."""
        with self._refresh_lock:
            try:
                version = self._resolve()
            except Exception as exc:
                self._fail(f"resolving {self.name}@{self.alias} failed: {exc}", exc)
                return False
            self.last_poll = time.time()
            self.alias_version = version
            current = self._current
            if version is None:
                self.last_error = (
                    f"{self.name}@{self.alias} is not set: train_model promotes a champion; "
                    + (f"still serving v{current.version}" if current else "nothing to serve yet")
                )
                return False
            if current is not None and current.version == str(version):
                self.last_error = None
                return False
            try:
                model = self._load(str(version))
                model.predict_rows([self._warmup_row])  # first call allocates; do it off the hot path
            except Exception as exc:
                keep = f"; still serving v{current.version}" if current else ""
                self._fail(f"loading {self.name} v{version} failed: {exc}{keep}", exc)
                return False
            self._current = model  # the swap: one reference assignment
            self.swaps += 1
            self.last_error = None
            log.info(
                "now serving %s v%s (%s@%s; was %s; loaded in %.2fs)",
                self.name,
                model.version,
                self.name,
                self.alias,
                f"v{current.version}" if current else "nothing",
                model.load_seconds,
            )
            if self.on_swap:
                self.on_swap(current, model)
            return True

    def _fail(self, message: str, exc: BaseException) -> None:
        self.last_error = message
        log.error("%s", message, exc_info=exc)
        if self.on_error:
            self.on_error(message, exc)

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def describe(self) -> dict[str, Any]:
        current = self._current
        return {
            "loaded": current is not None,
            "alias": f"{self.name}@{self.alias}",
            "alias_version": self.alias_version,
            "poll_seconds": self.poll_seconds,
            "last_poll": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_poll))
            if self.last_poll
            else None,
            "last_error": self.last_error,
            "swaps": self.swaps,
            **(current.describe() if current else {}),
        }
