"""``ivoryos-plugin run`` (plugins in the standalone dev host, or on ivoryos-edge) and
``ivoryos-plugin demo`` (real IvoryOS with the example plugins on a simulated deck)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from .targets import load_targets


class EdgeMissing(click.ClickException):
    """``--host edge`` without the ``[edge]`` extra: one ``Error:`` line naming what is missing and the
    install command, exit status 2 (as for a usage error: the command cannot run as asked)."""

    exit_code = 2


#: what ``--host`` names: the host that serves (IvoryOS 1.x, or ivoryos-edge with the ``[edge]`` extra)
HOSTS = ("ivoryos", "edge")
#: the address ``--bind`` defaults to, and the only one ivoryos-edge is served on (it has no login)
LOOPBACK = "127.0.0.1"
HOST_HELP = ("Which host serves: 'ivoryos' (IvoryOS 1.x: {ivoryos}) or 'edge' (ivoryos-edge at 127.0.0.1, "
             "the [edge] extra). An address here still works for one release, with a warning: use --bind.")
BIND_HELP = "The address to listen on (default 127.0.0.1, this machine only; 0.0.0.0: every interface)."


def host_and_bind(command: str, host: str, bind: Optional[str]) -> Tuple[bool, str]:
    """What ``--host`` and ``--bind`` ask for: whether ivoryos-edge serves, and the address to bind.

    ``--host`` names the host that serves (:data:`HOSTS`); an address given to it (its meaning before
    ``--bind``) is still taken for one release, with a line on stderr naming ``--bind``.

    :param command: the command (``"run"``, ``"demo"``), for the messages.
    :param host: ``--host``.
    :param bind: ``--bind`` (None: not given).
    :raises click.UsageError: an address in both, or ``--host edge`` with an address other than 127.0.0.1."""
    if host.lower() in HOSTS:
        edge = host.lower() == "edge"
        if edge and bind not in (None, LOOPBACK):
            raise click.UsageError(f"--host edge serves on {LOOPBACK} only (ivoryos-edge has no login): drop "
                                   f"--bind {bind}, or serve on IvoryOS (--host ivoryos --bind {bind}).")
        return edge, bind or LOOPBACK
    if bind is not None:
        raise click.UsageError(f"--host {host!r} is not a host (ivoryos or edge) and --bind {bind!r} gives the address: "
                               f"drop --host {host}.")
    click.echo(f"Deprecated: 'ivoryos-plugin {command} --host {host}': --host names the host that serves (ivoryos or "
               f"edge) and --bind the address: use --bind {host}. An address after --host stops working in the next "
               "release.", err=True)
    return False, host


def _require_edge(command: str) -> None:
    """Stop ``command`` with :class:`EdgeMissing` when the ``[edge]`` extra is not installed (before
    anything is loaded or printed).

    :param command: the command line, for the message."""
    from ...hosts.extras import edge_problem

    problem = edge_problem()
    if problem is not None:
        raise EdgeMissing(f"{command} cannot start: {problem}")


@click.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), help="A deck script (its globals are the instruments).")
@click.option("--host", default="ivoryos", show_default=True, metavar="[ivoryos|edge]",
              help=HOST_HELP.format(ivoryos="the standalone dev host, with a login token"))
@click.option("--bind", default=None, metavar="ADDRESS", help=BIND_HELP)
@click.option("--port", default=8765, show_default=True, type=int, envvar="PORT", help="TCP port (or $PORT).")
@click.option("--token", default=None, help="The login token (random by default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data folder (./ivoryos_data).")
def run(targets: Tuple[str, ...], deck: Optional[str], host: str, bind: Optional[str], port: int,
        token: Optional[str], data_dir: Optional[str]) -> None:
    """Serve TARGETS (module:attribute, or a project or package folder such as ./balance_log) in
    the standalone dev host, protected by a login token printed at start (valid until the host stops),
    or on ivoryos-edge (--host edge)."""
    import shlex

    from ...core.names import PluginError
    from ...hosts.devhost import create_app, serve
    from ...runtime.quiet import quiet_access_log
    from ..checks.collision import command_problem
    from ..demo import DemoError, code_failure, load_deck_or_explain
    from ..ports import port_problem

    edge, address = host_and_bind("run", host, bind)
    if edge:
        _require_edge("ivoryos-plugin run --host edge")
    shadowed = command_problem(targets, deck)  # a checkout of the official template: its package is ours by name
    if shadowed:
        raise click.ClickException(shadowed)
    plugins = [plugin for t in targets for plugin in load_targets(t)]
    problem = port_problem(address, port, "ivoryos-plugin run " + " ".join(shlex.quote(t) for t in targets))
    if problem:  # before the login URL: it must not say the host is up
        raise click.ClickException(problem)
    try:
        deck_module = load_deck_or_explain(Path(deck), "the dev host") if deck else None
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if edge:  # the next IvoryOS generation (docs/edge.md): the same plugins, the same deck
        from ...hosts.edge.launcher import serve as serve_on_edge

        serve_on_edge(plugins, deck_module, port=port, data_dir=data_dir)
        return
    try:
        app = create_app(plugins, deck=deck_module, token=token, data_dir=data_dir)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        names = ", ".join(repr(getattr(p, "name", p)) for p in plugins)
        raise click.ClickException(code_failure(f"registering plugin {names} in the dev host", exc,
                                                "Fix the plugin; ivoryos-plugin check PATH finds common mistakes.")) from None
    if address not in (LOOPBACK, "localhost", "::1"):
        click.echo(f"WARNING: the dev host listens on {address}: anyone with the token on the network can use it.",
                   err=True)
    quiet_access_log(transport=True)  # no Werkzeug production warnings, no Socket.IO polling lines
    serve(app, bind=address, port=port)


@click.command()
@click.option("--host", default="ivoryos", show_default=True, metavar="[ivoryos|edge]",
              help=HOST_HELP.format(ivoryos="real IvoryOS under ivoryos_plugin.run"))
@click.option("--bind", default=None, metavar="ADDRESS", help=BIND_HELP)
@click.option("--port", default=8000, show_default=True, type=int, envvar="PORT", help="TCP port (or $PORT).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The deck script (default: the bundled simulated deck).")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="This demo's data folder: IvoryOS's database, the plugins' settings and history "
                   "(default: ./ivoryos_data/demo-PORT, one per port).")
def demo(host: str, bind: Optional[str], port: int, no_browser: bool, deck: Optional[str],
         data: Optional[str]) -> None:
    """Start real IvoryOS with the example plugins (and every installed one) on a simulated deck
    (balance, pump, hotplate). Each port keeps its own data: two demos never share values."""
    from ..demo import DemoError, run_demo

    edge, address = host_and_bind("demo", host, bind)
    if edge:
        _require_edge("ivoryos-plugin demo --host edge")
    try:
        run_demo(bind=address, port=port, open_browser=not no_browser, deck=deck, data=data, edge=edge)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
