"""What ``ivoryos-plugin check`` found: one :class:`Finding` per check (``ERROR``, ``WARNING`` or
``ok``, about a plugin or the project, with the fix), gathered in a :class:`Report` that prints as
the CLI shows it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List


ERROR, WARNING, OK = "ERROR", "WARNING", "ok"


@dataclass
class Finding:
    """One check's result.

    :param level: ``"ERROR"``, ``"WARNING"`` or ``"ok"``.
    :param subject: the plugin (or ``project``) it is about.
    :param check: the check: name, endpoint, register, templates, entry-point, metadata, ivoryos-version,
        socketio, edge.
    :param message: what is wrong and the fix (empty for ``ok``)."""

    level: str
    subject: str
    check: str
    message: str = ""


@dataclass
class Report:
    """What ``ivoryos-plugin check`` found.

    :param target: what was checked (a path, or ``installed plugins``).
    :param findings: every check's result, in order."""

    target: str
    findings: List[Finding] = field(default_factory=list)

    @property
    def errors(self) -> List[Finding]:
        """The failed checks (the CLI exits 1 when there is one)."""
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> List[Finding]:
        """The checks that found something to look at, not blocking."""
        return [f for f in self.findings if f.level == WARNING]

    def add(self, level: str, subject: str, check: str, message: str = "") -> None:
        """Record a result.

        :param level: ``ERROR``, ``WARNING`` or ``ok``.
        :param subject: the plugin or ``project``.
        :param check: the check's name.
        :param message: the problem and its fix."""
        self.findings.append(Finding(level, subject, check, message))

    def lines(self) -> List[str]:
        """The report as printed by the CLI: one line per check, then a summary."""
        out = [f"Checking {self.target}"]
        for f in self.findings:
            text = f"  {f.level:<8} {f.subject:<18} {f.check:<16}"
            out.append(f"{text} {f.message}".rstrip())
        n_err, n_warn = len(self.errors), len(self.warnings)
        verdict = "FAILED" if n_err else "passed"
        out.append(f"{verdict}: {n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}.")
        return out
