"""The one guard on setup methods: declaring after the plugin is registered raises (as Flask's
``@setupmethod`` does for a Blueprint), because an app that already registered the plugin would
never see the late declaration."""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, cast

from .names import PluginError

F = TypeVar("F", bound=Callable[..., Any])


class SetupFinished(PluginError, AssertionError):
    """A setup method was called on a plugin that an app has already registered."""


def setupmethod(method: F) -> F:
    """Decorate a ``Plugin`` method that declares something: it raises once the plugin is registered.

    :param method: the setup method.

    Example::

        @setupmethod
        def action(self, func=None, **options): ...
    """
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.registered_once:
            raise SetupFinished(self.name, f"the setup method {method.__name__!r} can no longer be called: an app "
                                           "has already registered the plugin, so it would never see the change. "
                                           "Declare everything at import time, before the plugin is registered.")
        return method(self, *args, **kwargs)

    return cast(F, guarded)
