"""Specs: what a team supplies for its own feed (:mod:`mlops.spec.feed`) or model (:mod:`mlops.spec.model`).

Both are found the same way (:func:`lookup`): a spec object, a registered name, or an import path
``package.module:ATTRIBUTE`` (:func:`resolve`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping

T = TypeVar("T")


def resolve(path: str) -> Any:
    """The object at ``package.module:attribute`` (clear error naming the path when missing)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{path!r} is not an import path: use package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{path!r}: cannot import {module_name} ({error})") from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{path!r}: {module_name} has no attribute {attribute!r}") from None


def lookup(ref: T | str | None, kind: type[T], registry: Mapping[str, str], default: str, guide: str) -> T:
    """The spec of type ``kind`` that ``ref`` names: a ``kind`` itself, a name of ``registry``
    (name -> import path) or ``module:ATTRIBUTE``; ``None`` or ``""`` is ``default``.

    An unknown name is an error listing the registered ones and pointing at ``guide`` (the doc
    section that explains how to add one); an import path to something else names what it found.
    """
    if isinstance(ref, kind):
        return ref
    name = ref or default
    path = registry.get(name) or (name if ":" in name else None)
    what = kind.__name__.replace("Spec", "").lower()
    if path is None:
        raise ValueError(
            f"unknown {what} spec {name!r}: use one of {sorted(registry)} or an import path "
            f"package.module:SPEC ({guide})"
        )
    spec = resolve(path)
    if not isinstance(spec, kind):
        raise ValueError(f"{path!r} is a {type(spec).__name__}, not a {kind.__name__}")
    return spec
