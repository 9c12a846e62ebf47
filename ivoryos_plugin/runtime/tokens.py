"""API tokens for programs: stored hashed, scoped to one plugin or all, revocable at once."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .files import atomic_write

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single writer assumed
    fcntl = None  # type: ignore[assignment]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class TokenRecord:
    """A stored token (never the token itself).

    :param name: a label chosen at creation, unique.
    :param plugin: the plugin it is scoped to, or None for all plugins.
    :param digest: SHA-256 of the token, hex.
    :param created: creation time (epoch seconds)."""

    name: str
    plugin: Optional[str]
    digest: str
    created: float


log = logging.getLogger("ivoryos_plugin.tokens")


class TokenError(ValueError):
    """A token command was given a bad name (duplicate, unknown), or the token file is unreadable."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Tokens in ``<data>/plugins/tokens.json``; a change on disk (another process's revoke) is
    picked up at the next check.

    :param path: the JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[int, int, int]] = None
        self._records: Dict[str, TokenRecord] = {}
        self._broken: Optional[Tuple[int, int, int]] = None

    def _stat(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)  # every save is a new file (a new inode)

    def _load(self) -> Dict[str, TokenRecord]:
        stamp = self._stat()
        if stamp != self._stamp:
            records: Dict[str, TokenRecord] = {}
            if stamp is not None:
                records = self._read()
            self._records, self._stamp = records, stamp
        return self._records

    def _read(self) -> Dict[str, TokenRecord]:
        try:
            items = json.loads(self.path.read_text(encoding="utf-8") or "[]")
            records = {}
            for item in items:
                record = TokenRecord(name=str(item["name"]), plugin=item.get("plugin") or None,
                                     digest=str(item["digest"]), created=float(item.get("created", 0)))
                records[record.name] = record
            return records
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            raise TokenError(f"the token file {self.path} is unreadable ({type(exc).__name__}: {exc}); "
                             "fix it or delete it and create the tokens again.") from exc

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise writers across processes (two CLI commands at once never lose a change)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _save(self, records: Dict[str, TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps([asdict(r) for r in records.values()], indent=1), mode=0o600)
        self._stamp = None

    def create(self, name: str, plugin: Optional[str] = None) -> str:
        """Create a token and return it (shown once; only its hash is stored).

        :param name: a unique label, e.g. ``"acquisition-pc"``.
        :param plugin: scope it to this plugin, or None for all."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise TokenError(f"token name {name!r} is not allowed; use 1 to 64 letters, digits, '.', '_', "
                             "'-' or '@', starting with a letter or digit (e.g. 'acquisition-pc').")
        if plugin is not None and not plugin.isidentifier():
            raise TokenError(f"--plugin {plugin!r} is not a plugin name (plugin names are Python "
                             "identifiers, e.g. 'balance'); leave it out to allow every plugin.")
        with self._lock, self._file_lock():
            records = dict(self._load())
            if name in records:
                raise TokenError(f"a token named {name!r} exists; revoke it first or choose another name.")
            token = "ivp_" + secrets.token_urlsafe(32)
            records[name] = TokenRecord(name=name, plugin=plugin, digest=_digest(token), created=time.time())
            self._save(records)
            return token

    def revoke(self, name: str) -> None:
        """Delete the token ``name``; requests using it are refused from now on.

        :param name: the token's label."""
        with self._lock, self._file_lock():
            records = dict(self._load())
            if name not in records:
                raise TokenError(f"no token named {name!r}; see 'ivoryos-plugin token list'.")
            del records[name]
            self._save(records)

    def list(self) -> List[TokenRecord]:
        """The stored tokens (names, scopes, creation times)."""
        with self._lock:
            return sorted(self._load().values(), key=lambda r: r.created)

    def verify(self, token: str) -> Optional[TokenRecord]:
        """The record of ``token``, or None when it is unknown or revoked.

        :param token: the presented token."""
        if not isinstance(token, str) or not token:
            return None
        digest = _digest(token)
        with self._lock:
            try:
                records = self._load()
            except TokenError as exc:
                if self._broken != self._stat():  # say it once per version of the file
                    self._broken = self._stat()
                    log.error("%s Every API token is refused until then.", exc)
                return None  # fail closed
        for record in records.values():
            if hmac.compare_digest(record.digest, digest):
                return record
        return None
