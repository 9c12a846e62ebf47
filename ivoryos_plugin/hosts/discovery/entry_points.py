"""Finding plugins: the ``ivoryos.plugins`` entry point group, each plugin loaded in isolation
(:func:`discover`: one that fails to import or to pass the checks is reported, the others load)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from flask import Blueprint

from ...core import names
from ...core.names import PluginError
from ...core.versions import normalize, requirement_problem
from .. import ivoryos as adapter
from .checks import check_plugin, resolve_entry_point
from .failures import Failure, _fail
from .isolation import isolate_registration

GROUP = names.ENTRY_POINT_GROUP


@dataclass
class Discovery:
    """The result of :func:`discover`: loaded plugins and the report of those that failed.

    :param plugins: the loaded plugin Blueprints, in discovery order.
    :param failures: one entry per plugin that failed.
    :param sources: plugin name -> ``module:attribute (distribution version)``."""

    plugins: List[Blueprint] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)
    sources: Dict[str, str] = field(default_factory=dict)

    def report(self) -> List[str]:
        """One line per plugin: ``ok name version source`` or ``FAILED name (stage): error``."""
        lines = [f"ok      {p.name:<20} {getattr(p, 'version', '') or '-':<10} {self.sources.get(p.name, '')}"
                 for p in self.plugins]
        return lines + [f"FAILED  {f.name:<20} {'-':<10} {f.source}: {f.stage}: {f.error}" for f in self.failures]


def _entry_points(group: str) -> List[Tuple[Any, Any]]:
    """``(entry point, distribution)`` pairs of ``group``, one distribution per name (first on sys.path)."""
    from importlib import metadata

    if sys.version_info >= (3, 10):
        return [(ep, ep.dist) for ep in metadata.entry_points(group=group)]
    seen, found = set(), []  # pragma: no cover - Python 3.9
    for dist in metadata.distributions():  # pragma: no cover
        key = normalize(dist.metadata["Name"] or "")
        if key in seen:
            continue
        seen.add(key)
        found.extend((ep, dist) for ep in dist.entry_points if ep.group == group)
    return found


def discover(group: str = GROUP, *, exclude: Optional[Iterable[str]] = None) -> Discovery:
    """Load every plugin installed under the entry point ``group``, each in isolation.

    An import error, an exception at construction, a duplicate or reserved name, a missing nav
    endpoint or an incompatible IvoryOS (``min_ivoryos`` or the distribution's ``ivoryos``
    requirement) puts that one plugin in ``failures`` with its traceback; the others load.

    :param group: the entry point group.
    :param exclude: plugin names to skip (not even imported).

    Example::

        found = ivoryos_plugin.discover()
        for failure in found.failures:
            print(failure.name, failure.error)
    """
    result = Discovery()
    skip = set(exclude or [])
    installed = adapter.installed_version()
    for ep, dist in sorted(_entry_points(group), key=lambda pair: pair[0].name):
        if ep.name in skip:
            continue
        source: str = ep.value
        requires: List[str] = []
        if dist is not None:
            meta = dist.metadata  # parsed once: name, version and requirements
            source = f"{ep.value} ({meta['Name']} {meta['Version']})"
            requires = list(meta.get_all("Requires-Dist") or [])
        try:
            obj = ep.load()
        except BaseException as exc:  # a plugin may even call sys.exit at import
            if isinstance(exc, KeyboardInterrupt):
                raise
            result.failures.append(_fail(ep.name, "import", exc, source))
            continue
        try:
            obj = resolve_entry_point(obj, ep.name)
        except PluginError as exc:
            result.failures.append(_fail(ep.name, "check", exc, source))
            continue
        if isinstance(obj, Blueprint) and obj.name in skip:
            continue
        try:
            check_plugin(obj, installed)
            problem = requirement_problem(requires, installed)
            if problem:
                raise PluginError(obj.name, problem)
            if obj.name in result.sources:
                raise PluginError(obj.name, f"is installed twice ({result.sources[obj.name]} and {source}); "
                                            "uninstall one, or rename one of the plugins.")
        except Exception as exc:
            result.failures.append(_fail(ep.name, "check", exc, source))
            continue
        result.plugins.append(isolate_registration(obj, source))
        result.sources[obj.name] = source
    return result
