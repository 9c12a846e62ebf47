"""API tokens for programs: stored hashed, scoped to one plugin or all, revocable at once."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple


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


class TokenError(ValueError):
    """A token command was given a bad name (duplicate, unknown)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Tokens in ``<data>/plugins/tokens.json``; a change on disk (another process's revoke) is
    picked up at the next check.

    :param path: the JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[int, int]] = None
        self._records: Dict[str, TokenRecord] = {}

    def _stat(self) -> Optional[Tuple[int, int]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> Dict[str, TokenRecord]:
        stamp = self._stat()
        if stamp != self._stamp:
            records: Dict[str, TokenRecord] = {}
            if stamp is not None:
                for item in json.loads(self.path.read_text(encoding="utf-8") or "[]"):
                    records[item["name"]] = TokenRecord(**item)
            self._records, self._stamp = records, stamp
        return self._records

    def _save(self, records: Dict[str, TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([asdict(r) for r in records.values()], handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._stamp = None

    def create(self, name: str, plugin: Optional[str] = None) -> str:
        """Create a token and return it (shown once; only its hash is stored).

        :param name: a unique label, e.g. ``"acquisition-pc"``.
        :param plugin: scope it to this plugin, or None for all."""
        with self._lock:
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
        with self._lock:
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
        digest = _digest(token)
        with self._lock:
            records = self._load()
        for record in records.values():
            if hmac.compare_digest(record.digest, digest):
                return record
        return None
