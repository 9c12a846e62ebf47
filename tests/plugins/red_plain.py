"""A plain Blueprint plugin (not a ``Plugin``) with a nested blueprint mounted at its own
url_prefix and a route its deferred setup adds to the app under the plugin's URL prefix. Every
route writes a line to ``red_plain.log`` in the server's folder when it runs."""
import os

from flask import Blueprint, request

plugin = Blueprint("redplain", __name__)
plugin.plugin_type = "tab"
LOG = os.path.join(os.getcwd(), "red_plain.log")


def _ran(what: str) -> dict:
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(f"{what} {request.method}\n")
    return {"ran": what, "method": request.method}


@plugin.route("/")
def main():
    return "<!doctype html><html><head><title>plain</title></head><body>plain</body></html>"


child = Blueprint("child", __name__)


@child.route("/secret", methods=["GET", "POST"])
def secret():
    return _ran("child")


plugin.register_blueprint(child, url_prefix="/child")


def _raw():
    return _ran("raw")


def _add_raw_route(state) -> None:
    # a route on the app itself, under the plugin's prefix (as some upstream plugins do in init)
    state.app.add_url_rule(f"{state.url_prefix}/raw", "redplain_raw", _raw, methods=["GET", "POST"])


plugin.record_once(_add_raw_route)
