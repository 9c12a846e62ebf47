"""A plugin that could not be loaded: :class:`Failure` (its name, the stage it failed at, the error
and the traceback, as the health page shows them), made from the exception by :func:`_fail`."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Dict


@dataclass
class Failure:
    """A plugin that could not be loaded.

    :param name: the entry point (or plugin) name.
    :param stage: ``"import"``, ``"check"``, ``"init_socketio"`` or ``"register"``.
    :param error: ``Type: message``.
    :param traceback: the formatted traceback.
    :param source: ``module:attribute (distribution version)``."""

    name: str
    stage: str
    error: str
    traceback: str
    source: str = ""

    def as_dict(self) -> Dict[str, str]:
        """A JSON-able copy (the shape the health page shows)."""
        return {"name": self.name, "stage": self.stage, "error": self.error,
                "traceback": self.traceback, "source": self.source}


def _fail(name: str, stage: str, exc: BaseException, source: str = "") -> Failure:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(name=name, stage=stage, error=f"{type(exc).__name__}: {exc}", traceback=tb, source=source)
