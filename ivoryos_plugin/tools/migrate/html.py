"""``ivoryos-plugin migrate --from-html``: a single HTML page as a plugin package."""
from __future__ import annotations

import re
from pathlib import Path


from ...core.names import required_endpoint
from .pages import convert_page, page_title
from .metadata import _write_project
from .tree import MigrateError, Migration, _os_error, _staged, _title


def _doc(text: str) -> str:
    """``text`` safe inside a triple-quoted docstring (quotes, backslashes and control characters
    escaped): a page's title or file name never ends the docstring early."""
    return repr(text)[1:-1].replace('"', '\\"')


PLUGIN = '''"""{doc_title}: the page {doc_page} as an IvoryOS plugin (made by ``ivoryos-plugin migrate --from-html``)."""
from ivoryos_plugin import Plugin

plugin = Plugin({name!r}, __name__, title={title!r}{placement})


@plugin.route("{rule}")
def {endpoint}():
    return plugin.render("{name}.html")
'''


def migrate_html(page: Path, name: str, directory: Path, placement: str = "tab") -> Migration:
    """Write the framework plugin ``directory/name`` whose one page is the HTML file ``page``.

    :param page: a standalone HTML page (its CDN libraries become the framework's local copies).
    :param name: the new plugin, package and entry point name.
    :param directory: where to create the new project folder.
    :param placement: ``"tab"`` or ``"left_panel"`` (the page is then the widget).
    :raises MigrateError: the page cannot be read as UTF-8 text.
    :raises PluginError: ``name`` is unusable.
    :raises FileExistsError: ``directory/name`` exists."""
    page = Path(page)
    try:
        html = page.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrateError(f"{page} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 and "
                           "migrate again.") from None
    except OSError as exc:
        raise _os_error(exc) from None
    title = page_title(html, _title(name))
    try:
        with _staged(name, directory) as (target, staging):
            migration = _convert_page_project(page, html, title, name, placement, staging)
            staging.rename(target)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _os_error(exc) from None
    migration.path = target
    return migration


def _convert_page_project(page: Path, html: str, title: str, name: str, placement: str, staging: Path) -> Migration:
    (staging / name / "templates").mkdir(parents=True)
    (staging / name / "__init__.py").write_text(f'"""{_doc(title)}: an IvoryOS plugin."""\n', encoding="utf-8")
    endpoint = required_endpoint(placement)
    (staging / name / "plugin.py").write_text(PLUGIN.format(
        doc_title=_doc(title), doc_page=_doc(page.name), title=title, name=name,
        rule="/" if endpoint == "main" else "/widget", endpoint=endpoint, placement=', placement="left_panel"' if placement == "left_panel" else ""), encoding="utf-8")
    converted = convert_page(html, page.name, standalone=True)
    (staging / name / "templates" / f"{name}.html").write_text(converted.text, encoding="utf-8")
    (staging / "README.md").write_text(f"# {title}\n\nThe page `{page.name}` as an IvoryOS plugin, made by "
                                       "`ivoryos-plugin migrate --from-html`.\n", encoding="utf-8")
    migration = Migration(staging, f"{name}.plugin:plugin", notes=converted.notes)
    migration.changes.append(f"{name}/templates/{name}.html: the page, its CDN libraries local, io() the "
                             "plugin's connection")
    relative = sorted(set(re.findall(r"""(?:src|href)\s*=\s*["'](?![a-z]+:|//|#|\{)([^"']+)["']""", html, re.I)))
    if relative:
        migration.notes.append(f"{page.name} links files next to it ({', '.join(relative)}): copy them into "
                               f"{name}/static/ and link them with {{{{ url_for('{name}.static', filename='...') }}}}.")
    migration.plugins[name] = migration.target
    _write_project(staging, name, migration.plugins, {name: placement},
                   {"version": "0.1.0", "readme": "README.md", "description": f"{title}: an IvoryOS plugin page."},
                   migration)
    return migration
