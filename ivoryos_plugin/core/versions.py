"""Versions and requirements, read with :mod:`packaging` (PEP 440 / PEP 508): pure logic, no I/O."""
from __future__ import annotations

import re
from typing import Iterable, Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = ["normalize", "is_older", "specifier_allows", "requirement_problem"]


def normalize(project: str) -> str:
    """PEP 503 normalisation: ``Ivoryos_Plugin`` -> ``ivoryos-plugin``.

    :param project: a distribution name."""
    return str(canonicalize_name(project))


def is_older(installed: str, minimum: str) -> Optional[bool]:
    """Whether ``installed`` is an older version than ``minimum`` (None when either cannot be read).

    :param installed: the installed version, e.g. ``"1.6.14"``.
    :param minimum: the oldest acceptable version."""
    try:
        return Version(installed) < Version(minimum)
    except InvalidVersion:
        return None


def specifier_allows(specifier: str, version: str) -> Optional[bool]:
    """Whether ``version`` satisfies a PEP 440 ``specifier`` such as ``>=1.7,<2``.

    Pre-releases count as their release. None when either cannot be read.

    :param specifier: comma-separated clauses; empty allows any version.
    :param version: the installed version."""
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return None


def _spec_text(line: str, name: str) -> str:
    """The version part of a requirement line as its author wrote it (``>=1.0,<1.7``)."""
    text = line.split(";", 1)[0].strip()[len(name):]
    return re.sub(r"^\s*(\[[^\]]*\])?", "", text).strip().strip("()").replace(" ", "")


def requirement_problem(requirements: Iterable[str], installed: Optional[str],
                        project: str = "ivoryos") -> Optional[str]:
    """Why the declared requirement on ``project`` rejects the installed version (with the fix), or None.

    A requirement behind an ``extra`` marker is optional and ignored; one that cannot be read is
    not this function's to judge (``ivoryos-plugin check`` reports it).

    :param requirements: ``Requires-Dist`` lines (or pyproject ``dependencies``).
    :param installed: the installed version of ``project`` (None: not installed, nothing to say).
    :param project: the distribution to look for."""
    if installed is None:
        return None
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if normalize(requirement.name) != normalize(project):
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        spec = _spec_text(line, requirement.name)
        if specifier_allows(str(requirement.specifier), installed) is False:
            return (f"needs {project} {spec} but {installed} is installed; "
                    f"install a compatible version: pip install '{project}{spec}'.")
    return None
