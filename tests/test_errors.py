"""One error root: every exception the core defines derives from `GongkaiError`, so the CLI and
the web app can report each one (`error: …`, problem details) and none escapes as a traceback."""

from __future__ import annotations

import importlib
import pkgutil

import dispatcher
from dispatcher.errors import GongkaiError


def test_every_error_class_of_the_core_derives_from_the_one_root() -> None:
    defined: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(dispatcher.__path__, "dispatcher."):
        if ".migrations" in info.name:  # Alembic's scripts: run by Alembic, not imported
            continue
        module = importlib.import_module(info.name)
        defined += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
        ]
    assert len(defined) >= 14  # errors.py's tree and the errors other modules define
    outside = [
        f"{c.__module__}.{c.__qualname__}" for c in defined if not issubclass(c, GongkaiError)
    ]
    assert outside == []
