"""A plugin's settings: a pydantic model kept in a JSON file, validated, versioned and migrated,
safe across threads and processes, and served as an HTML form and ``settings.json``.

The package, one concern a module (each imports only those listed before it):

- :mod:`.errors` :class:`SettingsError`, :class:`SettingsValidationError` and pydantic's errors per field;
- :mod:`.locking` the file's lock between processes; :mod:`.store` :class:`SettingsStore` (pure logic,
  no Flask); :mod:`.forms` a settings model as HTML form fields, and form strings back to values;
- :mod:`.views` the routes ``/settings`` and ``/settings.json`` (Flask; imported by the runtime's host,
  never by this package's root, so the store stays free of Flask)."""
from __future__ import annotations

from .errors import ROOT_KEY, SettingsError, SettingsValidationError, validation_errors
from .forms import FieldSpec, coerce_form, form_fields
from .store import VALUES_KEY, VERSION_KEY, SettingsStore

__all__ = ["FieldSpec", "ROOT_KEY", "SettingsError", "SettingsStore", "SettingsValidationError", "VALUES_KEY",
           "VERSION_KEY", "coerce_form", "form_fields", "validation_errors"]
