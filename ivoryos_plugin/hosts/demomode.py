"""IvoryOS's demo mode: every visitor counts as logged in, so the framework says so and keeps
plugins off the hardware.

IvoryOS 1.7.2 (``app.py``, its ``before_request``; ``config.DemoConfig`` = ``get_config("demo")``):
with ``DEMO_MODE`` true in the app's config, Flask-Login's anonymous user becomes a per-session
demo user whose ``is_authenticated`` is True. Every login the framework asks for (plugin routes,
IvoryOS's own routes and its Socket.IO namespace under ``ivoryos_plugin.run``, plugin namespaces)
then lets every visitor through, and the framework cannot tell a visitor from a user.

What the framework does about it (docs/migration.md, "IvoryOS's demo mode"):

- ``ivoryos_plugin.run`` says it at start, first, and its lines about logins say they let everyone
  through; nothing claims a login that demo mode makes void;
- it fails closed on the hardware: while ``DEMO_MODE`` is on, plugin hardware actions are refused
  (503, with :data:`REFUSAL`), under ``ivoryos_plugin.run`` and plain ``ivoryos.run`` alike. Pages,
  streams and settings still answer, to anyone who reaches the port. To drive instruments from
  plugins, start IvoryOS without demo mode (and log in).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

#: IvoryOS's config key (verified on 1.6.14 and 1.7.2)
KEY = "DEMO_MODE"
#: why plugin hardware actions are refused in demo mode (the gate's problem: 503 and the health page)
REFUSAL = ("IvoryOS runs in demo mode (DEMO_MODE): every visitor counts as logged in, so the framework cannot tell "
           "who asks and refuses plugin hardware actions; start IvoryOS without demo mode (config=get_config(), not "
           "get_config('demo')) and log in to use them")
#: the hardening items whose login demo mode makes void (hosts/hardening/options.py ``items``)
VOID_ITEMS = ("login", "socket")


def is_demo(config: Any) -> bool:
    """Whether IvoryOS's demo mode is on in ``config`` (a ``Config`` object or an app's config dict).

    :param config: the config."""
    value = config.get(KEY, False) if isinstance(config, dict) else getattr(config, KEY, False)
    return bool(value)


def startup_line(host: str) -> str:
    """The first line ``ivoryos_plugin.run`` prints in demo mode.

    :param host: the address IvoryOS binds."""
    return (f"IvoryOS demo mode (DEMO_MODE): every visitor counts as logged in, so no login below keeps anyone out: "
            f"plugin pages, IvoryOS's pages and its Socket.IO answer whoever reaches {host}; plugin hardware actions "
            "are refused (503) because a visitor cannot be told from a user. Start without demo mode "
            "(config=get_config()) to require logins and use plugin hardware actions.")


def plain_line(names: Sequence[str]) -> str:
    """The line about plain Blueprint plugins in demo mode.

    :param names: their names."""
    return (f"plain Blueprint plugin(s) {', '.join(names)}: open to every visitor, as demo mode counts each as logged "
            "in (a CSRF token is still asked on POST; without demo mode they need a login or a bearer token).")


def truthful(say: Callable[[str], None], lines: Sequence[str], keys: Sequence[str]) -> Callable[[str], None]:
    """``say`` that adds, to the hardening lines whose login demo mode makes void, that it does.

    :param say: prints a line.
    :param lines: the hardening lines, in order (``hardening.describe``).
    :param keys: their items' keys, in the same order (``hardening.items``)."""
    void: Dict[str, bool] = {line: key in VOID_ITEMS for line, key in zip(lines, keys)} if len(lines) == len(keys) else {}

    def demo_say(line: str) -> None:
        say(line + " In demo mode this lets every visitor through: each counts as logged in." if void.get(line) else line)

    return demo_say
