"""The IvoryOS adapter: the ONE module that touches IvoryOS's internals (and other libraries' private
names). Every touch says which IvoryOS versions it was verified on; the ones hardware safety needs are
probed once when the framework attaches to IvoryOS, and a failed probe fails closed: hardware actions
answer 503 "cannot verify the deck is idle", and the health page shows why in red.

What happens when IvoryOS loads a plugin, in order (``ivoryos.run`` -> ``load_plugins`` -> Flask):
1. ``ivoryos.run`` builds its module-level app and Socket.IO server, then ``load_plugins`` calls
   ``blueprint.init_socketio(socketio)`` and ``app.register_blueprint(bp, url_prefix=...)`` per plugin.
2. Flask runs the plugin's deferred setup: the framework attaches to the app (once), :func:`adopt`
   probes IvoryOS for the runner lock and queue, and the plugin gets its runtime and namespace.
3. ``ivoryos.run`` sets ``global_state.deck = sys.modules[module]``; a starter thread
   (:func:`start_when_deck_is_set`) sees it and runs every plugin's ``on_start(deck)``.

The adapter is this package, split by what it adapts: :mod:`.state` (the version, the app, the deck,
the runner's lock and queue, the running workflow), :mod:`.sockets` (the Socket.IO server's default
namespace and message queue), :mod:`.serving` (the config, the database file, ``ivoryos.run``, the
check before it listens), :mod:`.pages` (what the framework changes in IvoryOS's pages) and
:mod:`.testing` (IvoryOS's app inside a test process). Every name is read from here, as
``adapter.NAME`` (a test that sets one here is obeyed)."""
from __future__ import annotations

from .state import (
    installed_version, is_ivoryos_app, deck, set_deck, probe, start_when_deck_is_set, deck_being_loaded,
    current_run, VERIFIED_ON, RUNNER_LOCK_ATTR, DECK_ATTR,
)
from .sockets import (
    default_namespace_handlers, guard_init_socketio, join_message_queue, guard_default_namespace,
    default_namespace_guarded, default_namespace_refusal,
)
from .serving import (
    sqlite_path, users_database, default_admin_active, get_config, run_parameters, run, before_serving,
    use_request_handler,
    PUBLIC_DEFAULT_KEY,
)
from .pages import (
    show_plugin_titles, login_form_with_token, without_signup_link, logo_folder, form_token_points,
    head_tags_point, head_end, with_inserts, token_field, forms_with_token, page_with_head_tags, CDN_ASSETS,
    LOGIN_ENDPOINT, LOGOUT_ENDPOINT, SIGNUP_ENDPOINT, STATIC_ENDPOINT, LOGO_ENDPOINT, LOGO_FIELD, LOGO_FOLDER,
    RUN_CONTROL_ENDPOINTS,
)
from .testing import (
    in_process_app, allow_late_blueprints,
)

__all__ = [
    "CDN_ASSETS", "DECK_ATTR", "LOGIN_ENDPOINT", "LOGOUT_ENDPOINT", "LOGO_ENDPOINT", "LOGO_FIELD",
    "LOGO_FOLDER", "PUBLIC_DEFAULT_KEY", "RUNNER_LOCK_ATTR", "RUN_CONTROL_ENDPOINTS", "SIGNUP_ENDPOINT",
    "STATIC_ENDPOINT", "VERIFIED_ON", "allow_late_blueprints", "before_serving", "current_run", "deck",
    "deck_being_loaded", "default_admin_active", "default_namespace_guarded", "default_namespace_handlers",
    "default_namespace_refusal", "form_token_points", "forms_with_token", "get_config",
    "guard_default_namespace", "guard_init_socketio", "head_end", "head_tags_point", "in_process_app", "installed_version",
    "is_ivoryos_app", "join_message_queue", "login_form_with_token", "logo_folder", "page_with_head_tags",
    "probe", "run", "run_parameters", "set_deck", "show_plugin_titles", "sqlite_path", "start_when_deck_is_set",
    "token_field", "use_request_handler", "users_database", "with_inserts", "without_signup_link"
]
