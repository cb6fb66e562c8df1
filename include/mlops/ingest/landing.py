"""When is a landing export complete? The contract with upstream (docs/landing-contract.md).

A day's folder in the landing zone holds the data file and, written **last**, a ``_SUCCESS``
marker::

    {landing}/<feed>/ds=YYYY-MM-DD/<feed>.csv    the export (written first)
    {landing}/<feed>/ds=YYYY-MM-DD/_SUCCESS      the marker (written last), optionally
        {"file": "<feed>.csv", "bytes": 123456, "sha256": "sha256:<hex>"}

The ingest sensor waits for the marker (not for the data file, which exists while upstream is
still writing it). The ingest reads check the data file against the marker's size and hash when
it carries them, and refuse a mismatch as :class:`LandingIncomplete`, a transient error (upstream
is still writing, or re-delivering): the task retries. An empty marker (Hadoop/Spark's
``_SUCCESS``) only says "complete".

A feed that cannot write markers uses the **stability** fallback instead
(``MLOPS_LANDING_COMPLETENESS=stable:SECONDS``): the data file counts as complete once its size
and modification time stayed the same for ``SECONDS`` of observation. :class:`Completeness` is
that setting; :class:`FileWatch` applies it to a ``file://`` folder (the sensor and its trigger
share it). Nothing here imports Airflow, pandas or boto3 at module level.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from mlops import lake
from mlops.errors import TransientError

MARKER_NAME = "_SUCCESS"
#: ``MLOPS_LANDING_COMPLETENESS`` when unset.
DEFAULT_COMPLETENESS = "marker"
DEFAULT_STABLE_SECONDS = 60.0
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


class LandingIncomplete(TransientError):
    """The landing export is not complete yet (no marker, or a data file that does not match it)."""


def marker_uri(data_uri: str) -> str:
    """The ``_SUCCESS`` marker beside ``data_uri`` (same folder)."""
    return f"{data_uri.rsplit('/', 1)[0]}/{MARKER_NAME}"


@dataclass(frozen=True)
class Marker:
    """What a ``_SUCCESS`` marker says about its folder's data file (every field optional)."""

    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None  # "sha256:<64 hex>"

    @classmethod
    def of(cls, file: str, data: bytes) -> Marker:
        import hashlib

        return cls(file=file, bytes=len(data), sha256="sha256:" + hashlib.sha256(data).hexdigest())

    def to_bytes(self) -> bytes:
        body = {k: v for k, v in (("file", self.file), ("bytes", self.bytes), ("sha256", self.sha256)) if v}
        return (json.dumps(body, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, uri: str) -> Marker:
        """Parse a marker's bytes: empty (completeness only) or the JSON object above.

        An unreadable marker raises :class:`LandingIncomplete`: it is most likely being written.
        """
        if not data.strip():
            return cls()
        try:
            body: Any = json.loads(data.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            size, digest, file = body.get("bytes"), body.get("sha256"), body.get("file")
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
                raise ValueError(f"bytes={size!r} is not a byte count")
            if digest is not None:
                match = _SHA256.match(str(digest).lower())
                if not match:
                    raise ValueError(f"sha256={digest!r} is not a SHA-256 hex digest")
                digest = "sha256:" + match.group(1)
            if file is not None and not isinstance(file, str):
                raise ValueError(f"file={file!r} is not a file name")
        except (UnicodeDecodeError, ValueError) as exc:
            raise LandingIncomplete(
                f"the marker {uri} is not readable ({exc}); it must be empty or a JSON object "
                '{"file": ..., "bytes": ..., "sha256": "sha256:<hex>"} (docs/landing-contract.md); '
                "the task retries in case it is still being written"
            ) from None
        return cls(file=file, bytes=size, sha256=digest)


def read_marker(data_uri: str) -> Marker | None:
    """The marker beside ``data_uri``, or ``None`` when there is none."""
    uri = marker_uri(data_uri)
    try:
        return Marker.parse(lake.read_bytes(uri), uri)
    except FileNotFoundError:
        return None
    except Exception as exc:  # S3: a ClientError NoSuchKey
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise


def write_marker(data_uri: str, data: bytes) -> str:
    """Write the marker of ``data`` (the bytes just written to ``data_uri``); returns its URI.

    Call it **after** the data file is in place: the marker is what says "complete".
    """
    uri = marker_uri(data_uri)
    lake.write_bytes(uri, Marker.of(data_uri.rsplit("/", 1)[-1], data).to_bytes())
    return uri


def check_against_marker(ds: str, data_uri: str, data: bytes, digest: str, marker: Marker | None) -> None:
    """Refuse ``data`` (read from ``data_uri``, hash ``digest``) when it does not match ``marker``.

    Raises :class:`LandingIncomplete` (transient): upstream is still writing or re-delivering.
    """
    if marker is None:
        return
    name = data_uri.rsplit("/", 1)[-1]
    if marker.file is not None and marker.file != name:
        raise LandingIncomplete(
            f"ds={ds}: the marker {marker_uri(data_uri)} describes {marker.file!r}, not {name!r}; "
            "fix upstream's marker (docs/landing-contract.md), then clear the task"
        )
    what = None
    if marker.bytes is not None and marker.bytes != len(data):
        what = f"{len(data)} bytes where its marker says {marker.bytes}"
    elif marker.sha256 is not None and marker.sha256 != digest:
        what = f"hash {digest} where its marker says {marker.sha256}"
    if what:
        raise LandingIncomplete(
            f"ds={ds}: the landing export {data_uri} has {what}: upstream is still writing it (or "
            "re-delivering the day); not read, nothing written; the task retries. If it persists, "
            f"upstream must write {MARKER_NAME} last, after the data file is complete"
        )


# --- completeness policy and its file:// watch -----------------------------------------------------


@dataclass(frozen=True)
class Completeness:
    """How the ingest sensor decides a landing export is complete.

    ``marker``: the ``_SUCCESS`` marker exists (and the data file). ``stable``: the data file's size
    and modification time stayed the same for ``stable_seconds`` of observation (feeds that cannot
    write markers; on S3 an object only appears once whole, so there it waits for the object).
    """

    mode: str = DEFAULT_COMPLETENESS
    stable_seconds: float = DEFAULT_STABLE_SECONDS

    @classmethod
    def parse(cls, value: str | None, name: str = "MLOPS_LANDING_COMPLETENESS") -> Completeness:
        text = (value or DEFAULT_COMPLETENESS).strip().lower()
        if text == "marker":
            return cls("marker")
        mode, _, seconds = text.partition(":")
        if mode == "stable":
            if not seconds:
                return cls("stable", DEFAULT_STABLE_SECONDS)
            try:
                quiet = float(seconds)
            except ValueError:
                quiet = -1.0
            if quiet > 0:
                return cls("stable", quiet)
        raise ValueError(
            f"{name}={value!r} is not a landing completeness: use 'marker' (wait for upstream's "
            f"{MARKER_NAME}, the default) or 'stable:SECONDS' (the file unchanged that long, e.g. "
            "stable:120, for feeds that cannot write markers)"
        )

    def __str__(self) -> str:
        return self.mode if self.mode == "marker" else f"stable:{self.stable_seconds:g}"


class FileWatch:
    """Checks a ``file://`` landing export for completeness, keeping what it observed.

    Used by the sensor (one check in the worker) and by its trigger (a check per poke interval).
    Stability needs two observations ``stable_seconds`` apart, so the same watch must be asked
    again (the trigger keeps one for its whole wait).
    """

    def __init__(self, data_uri: str, completeness: Completeness | str | None) -> None:
        self.data_uri = data_uri
        self.completeness = (
            completeness
            if isinstance(completeness, Completeness) or completeness is None
            else Completeness.parse(completeness)
        )
        self._path = lake.local_path(data_uri)
        self._marker = lake.local_path(marker_uri(data_uri))
        self._seen: tuple[int, int] | None = None  # (size, mtime_ns) last observed
        self._since = 0.0  # monotonic time since which it has not changed

    def check(self, now: float | None = None) -> tuple[bool, str]:
        """``(complete, why)``; ``why`` starts with "not there yet" while it is not."""
        now = time.monotonic() if now is None else now
        name = self._path.name
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._seen = None
            return False, f"not there yet: no {name}"
        if self.completeness is None:
            return True, f"{name} is there"
        if self.completeness.mode == "marker":
            if self._marker.is_file():
                return True, f"{name} and its {MARKER_NAME} marker are there"
            return (
                False,
                f"not there yet: {name} is there but its {MARKER_NAME} marker is not (upstream writing?)",
            )
        seen = (st.st_size, st.st_mtime_ns)
        if seen != self._seen:
            changed = "first seen" if self._seen is None else f"changed ({self._seen[0]} -> {seen[0]} bytes)"
            self._seen, self._since = seen, now
            return False, f"not there yet: {name} {changed}; waiting {self.completeness.stable_seconds:g} s"
        quiet = now - self._since
        if quiet >= self.completeness.stable_seconds:
            return True, f"{name} unchanged ({seen[0]} bytes) for {quiet:.0f} s"
        return False, (
            f"not there yet: {name} unchanged for {quiet:.0f} of {self.completeness.stable_seconds:g} s"
        )


def remove_marker_if_describes(data_uri: str, digest: str) -> bool:
    """Delete the marker beside ``data_uri`` if it still describes the bytes of hash ``digest``
    (or carries no hash); keep a marker of another delivery. Returns whether it was removed."""
    marker = read_marker(data_uri)
    if marker is None:
        return False
    if marker.sha256 is not None and marker.sha256 != digest:
        return False
    lake.delete(marker_uri(data_uri))
    return True
