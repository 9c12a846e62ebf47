"""Persistent, validated, versioned plugin settings (pure logic, no Flask): :class:`SettingsStore`.

A :class:`SettingsStore` keeps one pydantic model instance in a JSON file laid out as
``{"settings_version": N, "values": {...}}``. Every write is atomic (temporary file in the
same directory, ``fsync``, ``os.replace``, directory ``fsync``) and serialised by a
per-store thread lock plus an inter-process lock on ``<path>.lock``; read-modify-write
re-reads the file first, so concurrent writers in other processes never lose updates.

Migration convention: ``migrations[k]`` turns a *values* dict of version ``k - 1`` into one
of version ``k`` (keys are the target versions, ``1 .. version``). A missing key means the
step needs no change. Migrations receive a deep copy and must return a dict.

Secrets (``SecretStr``) are stored in clear text in the file; new files are created with
mode ``0600`` and an existing file keeps its mode. Values are stored by field name, so
models that use aliases need ``populate_by_name=True``.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Tuple, Type, TypeVar

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic_core import to_jsonable_python

from .. import payloads
from ..files import atomic_write
from .errors import ROOT_KEY, SettingsError, SettingsValidationError, validation_errors
from .locking import interprocess_lock, try_call

__all__ = ["SettingsStore"]

logger = logging.getLogger("ivoryos_plugin.settings")

M = TypeVar("M", bound=BaseModel)
VERSION_KEY = "settings_version"
VALUES_KEY = "values"
_FIX = "Fix: repair the file by hand, or delete it to fall back to the defaults; it was left unchanged."


def _unwrap_secrets(value: Any) -> Any:
    """Replace secret wrappers by their plain values, recursively, so they can be stored.

    :param value: a ``model_dump()`` result or part of it.
    """
    if isinstance(value, (SecretStr, SecretBytes)):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_unwrap_secrets(v) for v in value]
    return value


class SettingsStore(Generic[M]):
    """A pydantic model persisted to a JSON file, safe across threads and processes.

    :param model: the settings model class (every field should have a default).
    :param path: the JSON file; its directory is created on the first write.
    :param version: current schema version of the stored values.
    :param migrations: ``{target_version: fn(values_dict) -> values_dict}``, see module doc.
    :param plugin_name: named in error messages.
    :param on_change: ``callback(old, new)`` called after each successful write; exceptions
        it raises are logged and never undo the write.
    """

    def __init__(self, model: Type[M], path: Path, *, version: int = 0,
                 migrations: Optional[Mapping[int, Callable[[Dict[str, Any]], Dict[str, Any]]]] = None,
                 plugin_name: str = "?",
                 on_change: Optional[Callable[[M, M], Any]] = None) -> None:
        self.model = model
        self.path = Path(path)
        self.version = version
        self.plugin_name = plugin_name
        self.on_change = on_change
        self._migrations = dict(migrations or {})
        bad = sorted(k for k in self._migrations if not 1 <= k <= version)
        if version < 0 or bad:
            raise ValueError(f"plugin {plugin_name!r}: settings version must be >= 0 and migration "
                             f"keys in 1..{version} (target versions); got {bad}")
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = threading.RLock()
        self._current: Optional[M] = None
        self._raw: Optional[bytes] = None  # file bytes behind _current (None: no file)

    @property
    def _who(self) -> str:
        """The plugin as named in messages."""
        return f"plugin {self.plugin_name!r}"

    # ---------------------------------------------------------------- reading
    def load(self) -> M:
        """Read (and if needed migrate and rewrite) the settings file.

        A missing file yields the model defaults without writing anything.

        :raises SettingsError: corrupt JSON, bad layout, newer version, failed migration.
        :raises SettingsValidationError: stored or migrated values are invalid.
        """
        with self._lock:
            return self._refresh(locked=False)

    @property
    def current(self) -> M:
        """The validated settings as of the last load or write (loaded on first access).

        Writes by other processes are picked up by :meth:`load` and by every write.
        """
        with self._lock:
            return self._current if self._current is not None else self._refresh(locked=False)

    def _refresh(self, locked: bool) -> M:
        """Bring ``_current`` in line with the file; caller holds ``self._lock``.

        :param locked: whether the inter-process lock is held (needed to write a migration).
        """
        try:
            raw: Optional[bytes] = self.path.read_bytes()
        except FileNotFoundError:
            raw = None
        if self._current is not None and raw == self._raw:
            return self._current
        if raw is None:
            instance = self._validate({}, "the defaults")
        else:
            stored, values = self._parse(raw)
            if stored < self.version and not locked:
                with interprocess_lock(self._lock_path):
                    return self._refresh(locked=True)
            values = self._migrate(stored, values)
            step = f"version {stored}" if stored == self.version else \
                f"the result of migrating from version {stored} to {self.version}"
            instance = self._validate(values, f"{step} stored in {self.path}", fix=_FIX)
            if stored < self.version:
                raw = self._encode(instance)
                atomic_write(self.path, raw)
                logger.info("%s: migrated %s from version %d to %d",
                            self._who, self.path, stored, self.version)
        self._current, self._raw = instance, raw
        return instance

    def _parse(self, raw: bytes) -> Tuple[int, Dict[str, Any]]:
        """Decode the file envelope.

        :param raw: file content.
        :return: ``(stored_version, values)``.
        """
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # includes UnicodeDecodeError
            raise SettingsError(f"{self._who}: settings file {self.path} is not valid JSON "
                                f"({exc}). {_FIX}") from exc
        stored = doc.get(VERSION_KEY) if isinstance(doc, dict) else None
        if (not isinstance(stored, int) or isinstance(stored, bool) or stored < 0
                or not isinstance(doc.get(VALUES_KEY), dict)):
            raise SettingsError(f"{self._who}: settings file {self.path} must hold "
                                f'{{"{VERSION_KEY}": <int >= 0>, "{VALUES_KEY}": {{...}}}}. {_FIX}')
        if stored > self.version:
            raise SettingsError(
                f"{self._who}: settings file {self.path} has version {stored}, newer than the "
                f"{self.version} this plugin knows. Fix: upgrade the plugin, or delete the file "
                "to fall back to the defaults; it was left unchanged.")
        return stored, doc[VALUES_KEY]

    def _migrate(self, stored: int, values: Dict[str, Any]) -> Dict[str, Any]:
        """Apply migrations ``stored+1 .. version`` in order.

        :param stored: version found in the file.
        :param values: values dict at that version.
        """
        for target in range(stored + 1, self.version + 1):
            step = self._migrations.get(target)
            if step is None:
                continue
            where = (f"{self._who}: migrating settings file {self.path} from version "
                     f"{target - 1} to {target}")
            try:
                values = step(copy.deepcopy(values))
            except Exception as exc:
                raise SettingsError(f"{where} failed: {type(exc).__name__}: {exc}. Fix the "
                                    f"migration migrations[{target}] or the file; it was "
                                    "left unchanged.") from exc
            if not isinstance(values, dict):
                raise SettingsError(f"{where} failed: migrations[{target}] returned "
                                    f"{type(values).__name__}, not dict; the file was left unchanged.")
        return values

    # -------------------------------------------------------------- validation
    def _validate(self, values: Mapping[Any, Any], what: str = "the settings", fix: str = "") -> M:
        """Validate a complete values dict; unknown keys are errors.

        :param values: field name -> value.
        :param what: described in the error message.
        :param fix: appended to the error message.
        :raises SettingsValidationError: with per-field errors.
        """
        fields = self.model.model_fields
        errors: Dict[str, List[str]] = {}
        for key in values:
            if not isinstance(key, str):
                errors.setdefault(str(key), []).append("setting names must be strings")
            elif key not in fields:
                errors.setdefault(key, []).append(
                    f"unknown setting; known: {', '.join(fields) or 'none'}")
        try:
            instance = self.model.model_validate({k: v for k, v in values.items() if k in fields})
        except ValidationError as exc:
            for key, msgs in validation_errors(exc).items():
                errors.setdefault(key, []).extend(msgs)
        else:  # what pydantic accepts but JSON cannot hold: NaN, Infinity, absurd nesting
            for name in fields:
                found = payloads.problem(getattr(instance, name, None))
                if found is not None:
                    errors.setdefault(name, []).append(found)
        if errors:
            detail = "; ".join(f"{k}: {' / '.join(v)}" for k, v in errors.items())
            raise SettingsValidationError(f"{self._who}: invalid value in {what}: {detail}. "
                                          f"{fix}".rstrip(), errors)
        return instance

    def _encode(self, instance: M) -> bytes:
        """Serialise ``instance`` to the file format (secrets in clear).

        :param instance: validated settings.
        """
        values = to_jsonable_python(_unwrap_secrets(instance.model_dump()))
        doc = {VERSION_KEY: self.version, VALUES_KEY: values}
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    # ----------------------------------------------------------------- writing
    def update(self, data: Mapping[str, Any]) -> Tuple[M, M]:
        """Merge ``data`` onto the current values, validate the whole and save.

        :param data: some field names -> new values.
        :return: ``(old, new)`` instances.
        :raises SettingsValidationError: invalid input; nothing is written.
        """
        self._precheck(data, merge=True)
        return self._commit(lambda _old: data, merge=True)

    def replace(self, data: Mapping[str, Any]) -> Tuple[M, M]:
        """Save ``data`` as the complete settings; missing fields take the model defaults.

        :param data: field names -> values.
        :return: ``(old, new)`` instances.
        :raises SettingsValidationError: invalid input; nothing is written.
        """
        self._precheck(data, merge=False)
        return self._commit(lambda _old: data, merge=False)

    def _precheck(self, data: Mapping[str, Any], merge: bool) -> None:
        """Refuse invalid input before touching the disk (a rejected write creates no folder or lock
        file); :meth:`_commit` validates again under the locks.

        :param data: the new values.
        :param merge: merge onto the current values (else onto the defaults)."""
        if isinstance(data, Mapping):
            values: Dict[Any, Any] = {}
            if merge:
                current = self.current
                values = {name: getattr(current, name) for name in self.model.model_fields}
            values.update(data)
            self._validate(values)

    def modify(self, fn: Callable[[M], Mapping[str, Any]]) -> Tuple[M, M]:
        """Atomic read-modify-write: ``fn(current)`` returns the changes to merge, under the locks.

        :param fn: called with the freshest settings (re-read from disk); keep it fast.
        :return: ``(old, new)`` instances.
        :raises SettingsValidationError: the changes are invalid; nothing is written.
        """
        return self._commit(fn, merge=True)

    def _commit(self, build: Callable[[M], Any], merge: bool) -> Tuple[M, M]:
        """Shared body of update/replace/modify.

        :param build: returns the changes given the current instance.
        :param merge: merge onto current values (else start from defaults).
        """
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with interprocess_lock(self._lock_path):
                old = self._refresh(locked=True)
                data = build(old)
                if not isinstance(data, Mapping):
                    raise SettingsValidationError(
                        f"{self._who}: settings must be an object, got {type(data).__name__}",
                        {ROOT_KEY: [f"expected an object of settings, got {type(data).__name__}"]})
                values: Dict[Any, Any] = {}
                if merge:
                    values = {name: getattr(old, name) for name in self.model.model_fields}
                values.update(data)
                new = self._validate(values)
                raw = self._encode(new)
                for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                    try_call(os.unlink, tmp)  # left by dead writers; we hold the file lock
                atomic_write(self.path, raw)
                self._current, self._raw = new, raw
        if self.on_change is not None:
            try:
                self.on_change(old, new)
            except Exception:
                logger.exception("%s: settings on_change callback failed (the change was saved)",
                                 self._who)
        return old, new
