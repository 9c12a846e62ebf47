"""Discovery through the ``ivoryos.plugins`` entry points, each plugin loaded in isolation, and
``ivoryos_plugin.run`` starting a real IvoryOS with installed packages (good and broken)."""
from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import pytest
import requests
import socketio

from support import cookie_header, ROOT, PY, Server, ivoryos_login, launch
from installing import install_target
from ivoryos_plugin import PluginError, discover
from ivoryos_plugin.core.versions import requirement_problem, specifier_allows
from ivoryos_plugin.hosts.discovery import GROUP
from ivoryos_plugin.hosts.launcher import default_admin_active, harden, persistent_secret_key, run

FIXTURES = ROOT / "tests" / "fixtures"
GOOD = '''
from ivoryos_plugin import Plugin

plugin = Plugin("{name}", __name__)


@plugin.route("/")
def main():
    return "page"
'''


# ------------------------------------------------------------------ in-process: fake distributions
MakeDist = Callable[..., None]


@pytest.fixture
def dists(tmp_path: Path) -> Iterator[MakeDist]:
    """Make installed distributions (a module + a ``*.dist-info`` with entry_points.txt) on a
    temporary sys.path entry; forgotten (modules too) after the test."""
    root = tmp_path / "site"
    root.mkdir()
    made: List[str] = []

    def make(module: str, code: str, entry: Optional[Dict[str, str]] = None, requires: Sequence[str] = (),
             project: Optional[str] = None) -> None:
        (root / f"{module}.py").write_text(textwrap.dedent(code))
        info = root / f"{(project or module).replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {project or module}", "Version: 1.0"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        entries = entry or {module: f"{module}:plugin"}
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
        made.append(module)
        importlib.invalidate_caches()

    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield make
    finally:
        sys.path.remove(str(root))
        for module in made:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


def ours(found: object, names: List[str]) -> Dict[str, str]:
    """The discovery result restricted to our test plugins: name -> "ok" or the failure's stage."""
    result = {p.name: "ok" for p in found.plugins if p.name in names}  # type: ignore[attr-defined]
    result.update({f.name: f.stage for f in found.failures if f.name in names})  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("code, requires, stage, message", [
    ("raise ImportError('no module named vendor_driver')", [], "import", "no module named vendor_driver"),
    ("import sys\nsys.exit('quitting at import')", [], "import", "SystemExit: quitting at import"),
    ("from ivoryos_plugin import Plugin\nplugin = Plugin('bad name', __name__)", [], "import",
     "use 'bad_name'"),
    ("from flask import Blueprint\nplugin = Blueprint('data', __name__)\nplugin.add_url_rule('/', 'main', lambda: 'x')",
     [], "check", "'data' is the name of an IvoryOS built-in page"),
    ("from flask import Blueprint\nplugin = Blueprint('broken_nav', __name__)\nplugin.add_url_rule('/x', 'page', lambda: 'x')",
     [], "check", "has no 'main' endpoint"),
    (GOOD.format(name="too_new").replace("__name__)", "__name__, min_ivoryos='99.0')"), [], "check",
     "pip install 'ivoryos>=99.0'"),
    (GOOD.format(name="needs_new"), ["ivoryos>=99"], "check", "needs ivoryos >=99 but"),
    ("plugin = object()", [], "check", "not a Plugin or flask.Blueprint"),
], ids=["import-error", "sys-exit", "construction-error", "reserved-name", "missing-main", "min-ivoryos",
        "requires-dist", "not-a-blueprint"])
def test_one_broken_plugin_is_reported_and_the_others_load(dists: MakeDist, code: str, requires: List[str],
                                                           stage: str, message: str) -> None:
    dists("disc_alpha", GOOD.format(name="disc_alpha"))
    dists("disc_broken", code, requires=requires)
    dists("disc_omega", GOOD.format(name="disc_omega"))
    found = discover()
    assert ours(found, ["disc_alpha", "disc_broken", "disc_omega"]) == {
        "disc_alpha": "ok", "disc_broken": stage, "disc_omega": "ok"}
    failure = next(f for f in found.failures if f.name == "disc_broken")
    assert message in failure.error
    assert "Traceback" in failure.traceback and "disc_broken" in failure.source


def test_a_duplicate_name_loads_once_and_names_both_sources(dists: MakeDist) -> None:
    dists("disc_dup_a", GOOD.format(name="disc_dup"), entry={"disc_dup": "disc_dup_a:plugin"}, project="dup-a")
    dists("disc_dup_b", GOOD.format(name="disc_dup"), entry={"disc_dup_2": "disc_dup_b:plugin"}, project="dup-b")
    found = discover()
    assert [p.import_name for p in found.plugins if p.name == "disc_dup"] == ["disc_dup_a"]
    failure = next(f for f in found.failures if f.name == "disc_dup_2")
    assert "installed twice" in failure.error and "dup-a" in failure.error and "dup-b" in failure.error


def test_excluded_plugins_are_not_even_imported(dists: MakeDist) -> None:
    dists("disc_excluded", "raise RuntimeError('imported although excluded')")
    found = discover(exclude=["disc_excluded"])
    assert "disc_excluded" not in ours(found, ["disc_excluded"])
    assert "disc_excluded" not in sys.modules


def test_the_report_lists_loaded_and_failed_plugins(dists: MakeDist) -> None:
    dists("disc_rep_ok", GOOD.format(name="disc_rep_ok"), project="rep-ok")
    dists("disc_rep_bad", "raise ValueError('bad at import')", project="rep-bad")
    lines = discover().report()
    assert any(line.startswith("ok") and "disc_rep_ok" in line and "rep-ok 1.0" in line for line in lines)
    assert any(line.startswith("FAILED") and "disc_rep_bad" in line and "ValueError: bad at import" in line
               for line in lines)


@pytest.mark.parametrize("spec, version, allowed", [
    (">=1.7", "1.7.2", True), (">=1.8", "1.7.2", False), (">=1.7,<2", "2.0", False), ("==1.7.*", "1.7.9", True),
    ("==1.6.*", "1.7.0", False), ("~=1.7.0", "1.7.5", True), ("~=1.7.0", "1.8.0", False), ("!=1.7.2", "1.7.2", False),
    ("", "1.0", True), ("<1.7.2", "1.7.2", False), (">1.7", "1.7.0", False),
], ids=lambda v: str(v))
def test_specifiers(spec: str, version: str, allowed: bool) -> None:
    assert specifier_allows(spec, version) is allowed


@pytest.mark.parametrize("requirements, problem", [
    (["ivoryos>=2"], "needs ivoryos >=2 but 1.7.2 is installed; install a compatible version: pip install 'ivoryos>=2'."),
    (["ivoryos (>=1.0,<1.7)"], "needs ivoryos >=1.0,<1.7 but 1.7.2"),
    (["IvoryOS>=1.7"], None),
    (["ivoryos>=9; extra == 'llm'"], None),
    (["ivoryos-plugin>=9"], None),
], ids=["too-old", "parenthesised", "satisfied", "optional-extra", "another-project"])
def test_requirement_problem(requirements: List[str], problem: Optional[str]) -> None:
    found = requirement_problem(requirements, "1.7.2")
    assert (found is None) if problem is None else (found is not None and found.startswith(problem))


# ------------------------------------------------------------------ launcher hardening (no server)
class FakeConfig:
    """The attributes of IvoryOS's Config that the launcher reads and writes."""

    def __init__(self, folder: Path, key: str = "default_secret_key") -> None:
        self.OUTPUT_FOLDER = str(folder)
        self.SQLALCHEMY_DATABASE_URI = f"sqlite:///{folder / 'ivoryos.db'}"
        self.SECRET_KEY = key
        self.DEBUG = True


def test_public_secret_key_is_replaced_by_a_persistent_random_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVORYOS_PLUGIN_DATA", raising=False)
    first, second = FakeConfig(tmp_path), FakeConfig(tmp_path)
    harden(first, "127.0.0.1")
    harden(second, "127.0.0.1")
    assert first.SECRET_KEY != "default_secret_key" and len(first.SECRET_KEY) == 64
    assert second.SECRET_KEY == first.SECRET_KEY  # sessions survive a restart
    key_file = tmp_path / "plugins" / "secret_key"
    assert key_file.read_text() == first.SECRET_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.DEBUG is False


def test_a_secret_key_of_ones_own_is_kept(tmp_path: Path) -> None:
    config = FakeConfig(tmp_path, key="from-the-environment")
    harden(config, "127.0.0.1", debug=True)
    assert config.SECRET_KEY == "from-the-environment" and config.DEBUG is True
    assert not (tmp_path / "plugins" / "secret_key").exists()


def _ivoryos_db(folder: Path, password: Optional[bytes]) -> None:
    import sqlite3

    import bcrypt

    with sqlite3.connect(str(folder / "ivoryos.db")) as conn:
        conn.execute('CREATE TABLE user (username VARCHAR(50) PRIMARY KEY, "hashPassword" VARCHAR(255), settings JSON)')
        if password is not None:
            hashed = bcrypt.hashpw(password, bcrypt.gensalt(4)).decode()
            conn.execute('INSERT INTO user (username, "hashPassword") VALUES (?, ?)', ("admin", hashed))


@pytest.mark.parametrize("host, password, warned", [
    ("0.0.0.0", b"admin", True),
    ("0.0.0.0", None, True),  # no admin row: IvoryOS creates admin/admin at start
    ("0.0.0.0", b"a-real-password", False),
    ("127.0.0.1", b"admin", False),
    ("::1", b"admin", False),
], ids=["network-default-password", "network-fresh-database", "network-changed-password", "loopback", "ipv6-loopback"])
def test_network_binding_with_admin_admin_warns_loudly(tmp_path: Path, host: str, password: Optional[bytes],
                                                       warned: bool) -> None:
    _ivoryos_db(tmp_path, password)
    config = FakeConfig(tmp_path)
    assert default_admin_active(config) is (password in (b"admin", None))
    warnings = harden(config, host)
    assert any("admin/admin is still valid" in w and host in w for w in warnings) is warned


def test_persistent_secret_key_survives_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")
    key = persistent_secret_key(tmp_path)
    assert key and persistent_secret_key(tmp_path) == key


def test_run_refuses_a_given_plugin_that_would_break_ivoryos() -> None:
    from flask import Blueprint

    control = Blueprint("control", __name__)
    control.add_url_rule("/", "main", lambda: "x")
    with pytest.raises(PluginError, match="'control' is the name of an IvoryOS built-in page"):
        run(__name__, plugins=[control])
    nameless_nav = Blueprint("no_nav", __name__)
    with pytest.raises(PluginError, match="has no 'main' endpoint"):
        run(__name__, plugins=[nameless_nav])


# ------------------------------------------------------------------ a real IvoryOS with installed packages
DECK = '''
"""A deck for the discovery tests: IvoryOS with every installed plugin, through ivoryos_plugin.run."""
import os

import ivoryos_plugin


class Counter:
    """A stand-in instrument."""

    def bump(self, by: int = 1) -> int:
        """Count up."""
        self.n = getattr(self, "n", 0) + by
        return self.n


counter = Counter()

if __name__ == "__main__":
    ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]))
'''
PACKAGES = ["good", "broken_import", "reserved_name", "upstream_plain"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four fixture packages pip-installed into a folder only the IvoryOS subprocess sees."""
    return install_target([FIXTURES / name for name in PACKAGES], tmp_path_factory.mktemp("site") / "target")


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """IvoryOS started by ivoryos_plugin.run, discovering the installed packages."""
    folder = tmp_path_factory.mktemp("ivoryos")
    started = launch(DECK, folder, name="deck.py", env={"PYTHONPATH": str(site)})
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> requests.Session:
    return ivoryos_login(server.base)


def cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``ivoryos-plugin ARGS`` in a process that sees the installed fixture packages."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([PY, "-m", "ivoryos_plugin.tools.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.server
def test_ivoryos_serves_the_good_plugin_behind_login(server: Server, admin: requests.Session) -> None:
    page = admin.get(f"{server.base}/ivoryos/fixture_good/")
    assert page.status_code == 200 and "The good fixture plugin is served" in page.text
    assert "counter" in page.text  # the deck's instrument, through plugin.instruments
    assert admin.post(f"{server.base}/ivoryos/fixture_good/actions/echo", json={"text": "hi"}).json() == {"echo": "hi"}
    home = admin.get(f"{server.base}/ivoryos/")
    assert home.status_code == 200 and "/ivoryos/fixture_good/" in home.text  # in IvoryOS's nav
    anonymous = requests.get(f"{server.base}/ivoryos/fixture_good/", allow_redirects=False)
    assert anonymous.status_code == 302 and "/ivoryos/auth/login" in anonymous.headers["Location"]


@pytest.mark.server
def test_the_report_and_the_health_page_name_the_two_failures(server: Server, admin: requests.Session) -> None:
    status = admin.get(f"{server.base}/ivoryos/plugins/status.json").json()
    failures = {f["name"]: f for f in status["failures"] if f["stage"] in ("import", "check")}
    assert set(failures) == {"fixture_broken", "design"}
    assert failures["fixture_broken"]["stage"] == "import"
    assert "simulated import failure" in failures["fixture_broken"]["traceback"]
    assert "ivoryos-fixture-broken 0.0.1" in failures["fixture_broken"]["source"]
    assert failures["design"]["stage"] == "check" and "IvoryOS built-in page" in failures["design"]["error"]
    loaded = {p["name"] for p in status["plugins"]}
    assert {"fixture_good", "upstream_demo"} <= loaded and not {"fixture_broken", "design"} & loaded
    health = admin.get(f"{server.base}/ivoryos/plugins/")
    assert health.status_code == 200
    for text in ('data-plugin="fixture_broken"', 'data-plugin="design"', "simulated import failure"):
        assert text in health.text
    draft = admin.get(f"{server.base}/ivoryos/draft")  # IvoryOS's own design page, not replaced
    assert draft.status_code == 200 and "this would replace" not in draft.text
    output = server.output()
    assert "plugin 'fixture_broken' not loaded (import)" in output and "plugin 'design' not loaded (check)" in output


@pytest.mark.server
def test_a_plain_upstream_template_blueprint_is_served_with_login_required(server: Server,
                                                                           admin: requests.Session) -> None:
    anonymous = requests.get(f"{server.base}/ivoryos/upstream_demo/", allow_redirects=False)
    assert anonymous.status_code == 302 and "/ivoryos/auth/login" in anonymous.headers["Location"]
    as_program = requests.get(f"{server.base}/ivoryos/upstream_demo/", headers={"Accept": "application/json"})
    assert as_program.status_code == 401
    page = admin.get(f"{server.base}/ivoryos/upstream_demo/")
    assert page.status_code == 200 and "I am a plain upstream-template plugin page" in page.text
    assert 'name="csrf-token"' in page.text and "ivoryos_plugin.js" in page.text  # the framework's baseline
    assert "navbar" in page.text  # extends IvoryOS's base.html, as the template's base_exists switch asks


@pytest.mark.server
def test_a_plain_plugin_cannot_replace_ivoryos_socket_handlers(server: Server, admin: requests.Session) -> None:
    client = socketio.Client(reconnection=False)
    got = threading.Event()
    client.on("server_boot_id", lambda data=None: got.set())  # sent by IvoryOS's own 'connect' handler
    # logged in: under ivoryos_plugin.run IvoryOS's default namespace refuses anonymous clients
    client.connect(server.base, socketio_path="/ivoryos/socket.io", transports=["websocket"], wait_timeout=10,
                   headers={"Cookie": cookie_header(admin)})
    try:
        assert got.wait(10), "IvoryOS's connect handler did not run: the plugin replaced it"
    finally:
        client.disconnect()
    status = admin.get(f"{server.base}/ivoryos/plugins/status.json").json()
    assert not [f for f in status["failures"] if f["name"] == "upstream_demo"], "a running plugin is listed as failed"
    warnings = [w["message"] for w in status["warnings"] if w["name"] == "upstream_demo"]
    assert len(warnings) == 1 and "'connect'" in warnings[0] and "IvoryOS's keeps answering" in warnings[0]


@pytest.mark.server
def test_secret_key_is_random_and_kept_in_the_data_folder(server: Server) -> None:
    key_file = server.cwd / "ivoryos_data" / "plugins" / "secret_key"
    assert len(key_file.read_text()) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.server
def test_cli_list_shows_versions_sources_and_load_status(site: Path) -> None:
    result = cli(site, "list")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(l.startswith("ok") and "fixture_good" in l and "1.2.0" in l and "ivoryos-fixture-good 1.2.0" in l
               for l in lines), result.stdout
    assert any(l.startswith("ok") and "upstream_demo" in l and "ivoryos-fixture-upstream" in l for l in lines)
    assert any(l.startswith("FAILED") and "fixture_broken" in l and "simulated import failure" in l for l in lines)
    assert any(l.startswith("FAILED") and "design" in l and "built-in page" in l for l in lines)


@pytest.mark.server
def test_cli_check_installed_reports_each_broken_package(site: Path) -> None:
    result = cli(site, "check", "--installed")
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [l for l in result.stdout.splitlines() if l.strip().startswith("ERROR")]
    assert any("fixture_broken" in l and "entry-point" in l and "simulated import failure" in l for l in errors)
    assert any("design" in l and " name " in l and "choose another name" in l for l in errors)
    # a default-namespace 'connect' handler: ivoryos_plugin.run loads it with a warning, so check says WARNING too
    warnings = [l for l in result.stdout.splitlines() if l.strip().startswith("WARNING")]
    assert any("upstream_demo" in l and "socketio" in l for l in warnings), result.stdout
    assert not any("upstream_demo" in l and "socketio" in l for l in errors), result.stdout
    assert not any("fixture_good" in l for l in errors), result.stdout
