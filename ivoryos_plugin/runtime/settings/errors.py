"""What the settings say when they cannot be loaded, migrated, validated or saved:
:class:`SettingsError`, :class:`SettingsValidationError` (with each field's messages) and
:func:`validation_errors`, which groups pydantic's errors by field."""
from __future__ import annotations

from typing import Dict, List

from pydantic import ValidationError

__all__ = ["ROOT_KEY", "SettingsError", "SettingsValidationError", "validation_errors"]

#: where model-level errors (no one field) are listed
ROOT_KEY = "__root__"


class SettingsError(Exception):
    """Settings could not be loaded, migrated or saved."""


class SettingsValidationError(SettingsError):
    """Settings values failed validation; :attr:`errors` maps field name -> messages.

    :param message: human-readable summary.
    :param errors: per-field messages; model-level errors are under ``"__root__"``.
    """

    def __init__(self, message: str, errors: Dict[str, List[str]]) -> None:
        super().__init__(message)
        self.errors = errors


def validation_errors(exc: ValidationError) -> Dict[str, List[str]]:
    """Group a pydantic ``ValidationError`` by top-level field name.

    :param exc: the pydantic error.
    :return: field name (``"__root__"`` for model-level errors) -> messages; nested
        locations are prefixed to the message (``"0.x: Input should be ..."``).
    """
    out: Dict[str, List[str]] = {}
    for err in exc.errors(include_url=False):
        loc = err.get("loc", ())
        key = str(loc[0]) if loc else ROOT_KEY
        msg = str(err.get("msg", "invalid value"))
        if len(loc) > 1:
            msg = ".".join(str(part) for part in loc[1:]) + ": " + msg
        out.setdefault(key, []).append(msg)
    return out
