"""Run a function on a module right after it is imported (a post-import hook).

The project's patches of Airflow (:mod:`mlops.airflow.callbacks`, :mod:`mlops.airflow.audit_log`)
are installed by the local settings, which run while ``import airflow`` is still under way:
importing the modules they patch at that point would import Airflow's ORM models or its API
before Airflow has set itself up (SQLAlchemy then fails to configure the models' mappers). They
wait for Airflow's own import of the module instead.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType


def when_imported(name: str, hook: Callable[[ModuleType], Any]) -> None:
    """``hook(module)`` now if module ``name`` is imported, else right after it is (once)."""
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    sys.meta_path.insert(0, _Hook(name, hook))


class _Hook(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, hook: Callable[[ModuleType], Any]) -> None:
        self.name, self.hook = name, hook

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader, self.hook)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any, hook: Callable[[ModuleType], Any]) -> None:
        self.loader, self.hook = loader, hook

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.hook(module)
