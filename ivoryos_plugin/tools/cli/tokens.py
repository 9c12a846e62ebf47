"""``ivoryos-plugin token create / list / revoke``: the API tokens programs send as
``Authorization: Bearer``, kept in the plugins' data folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional

import click


@click.group()
def token() -> None:
    """API tokens for programs (Authorization: Bearer)."""


def _token_store(data_dir: Optional[str]) -> Any:
    from ...runtime.tokens import TokenStore

    root = Path(data_dir or os.environ.get("IVORYOS_PLUGIN_DATA") or Path("ivoryos_data") / "plugins")
    return TokenStore(root / "tokens.json")


_DATA_OPTION = click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                            help="The plugins' data folder (default: ./ivoryos_data/plugins or $IVORYOS_PLUGIN_DATA).")


@token.command("create")
@click.argument("name")
@click.option("--plugin", default=None, help="Scope the token to one plugin.")
@_DATA_OPTION
def token_create(name: str, plugin: Optional[str], data_dir: Optional[str]) -> None:
    """Create a token NAME and print it (shown once)."""
    from ...runtime.tokens import TokenError

    try:
        click.echo(_token_store(data_dir).create(name, plugin))
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None


@token.command("list")
@_DATA_OPTION
def token_list(data_dir: Optional[str]) -> None:
    """List the tokens (names and scopes, never the tokens)."""
    import time

    from ...runtime.tokens import TokenError

    try:
        records: List[Any] = _token_store(data_dir).list()
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    if not records:
        click.echo("No tokens.")
    for record in records:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created))
        click.echo(f"{record.name:<24} {record.plugin or '(all plugins)':<20} {created}")


@token.command("revoke")
@click.argument("name")
@_DATA_OPTION
def token_revoke(name: str, data_dir: Optional[str]) -> None:
    """Revoke the token NAME (refused from the next request on)."""
    from ...runtime.tokens import TokenError

    try:
        _token_store(data_dir).revoke(name)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Revoked {name}.")
