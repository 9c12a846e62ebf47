"""The sentences that explain a broken page and its fix, shared by ``ivoryos-plugin check`` (before
anything runs) and the dev host's error page (when the page fails), so both say the same thing.
Plain text in, plain text out: no Flask, no I/O."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable, List, Optional, Union


def _closest(wanted: str, candidates: Iterable[str]) -> Optional[str]:
    found = difflib.get_close_matches(wanted, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def missing_template(plugin: str, template: str, folder: Union[str, Path], available: Iterable[str],
                     where: str = "") -> str:
    """The message for a template that a plugin renders and its folder does not have.

    :param plugin: the plugin's name.
    :param template: the name it renders.
    :param folder: the plugin's template folder.
    :param available: the names the folder has.
    :param where: ``file.py:line`` of the call, when known.

    Example::

        missing_template("balance", "balanse.html", "/src/balance/templates", ["balance.html"])
        # "Plugin 'balance': renders 'balanse.html', which is not in /src/balance/templates (it has:
        #  balance.html); did you mean 'balance.html'? Create /src/balance/templates/balanse.html or fix the name."
    """
    names = sorted(set(available))
    closest = _closest(template, names)
    guess = f"did you mean {closest!r}? " if closest else ""
    at = f"{where} " if where else ""
    return (f"Plugin {plugin!r}: {at}renders {template!r}, which is not in {folder} (it has: "
            f"{', '.join(names) or 'nothing'}); {guess}{'Create' if guess else 'create'} "
            f"{Path(folder) / template} or fix the name.")


def missing_base(plugin: str, template: str, referenced: str) -> str:
    """The message for a template that extends or includes one that does not exist.

    :param plugin: the plugin's name.
    :param template: the plugin's template.
    :param referenced: what it extends or includes."""
    return (f"Plugin {plugin!r}: template {template} extends or includes {referenced!r}, which does not exist; use "
            f"{{% extends plugin_base %}} for the page frame, or create {referenced}.")


def missing_endpoint(plugin: str, endpoint: str, endpoints: Iterable[str]) -> str:
    """The message for ``url_for(endpoint)`` naming no endpoint of the app.

    :param plugin: the plugin whose page asked.
    :param endpoint: the endpoint given to ``url_for``.
    :param endpoints: the app's endpoints."""
    known: List[str] = sorted(set(endpoints))
    builtin = (".static", ".history", ".steps", ".run_step", ".camera_stream", ".camera_snapshot", ".gallery",
               ".gallery_file")  # the framework's own routes: not what a template means to link to
    own = [e for e in known if e.startswith(f"{plugin}.") and not e.endswith(builtin)]
    if "." not in endpoint.lstrip(".") or endpoint.startswith("."):
        candidates = [e.split(".", 1)[1] for e in own]
        wanted = endpoint.lstrip(".")
    else:
        candidates, wanted = known, endpoint
    closest = _closest(wanted, candidates)
    guess = f"did you mean {closest!r}? The" if closest else "the"
    return (f"Plugin {plugin!r}: url_for({endpoint!r}) names no endpoint; {guess} plugin's endpoints are "
            f"{', '.join(own) or 'none'}. Fix the name, or add a route: @plugin.route(\"/...\") def "
            f"{wanted.rsplit('.', 1)[-1]}(): ...")
