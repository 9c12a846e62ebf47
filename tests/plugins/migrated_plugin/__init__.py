"""The upstream-template fixture plugin (tests/fixtures/upstream_plain), migrated to ivoryos_plugin:
docs/migration.md shows the two side by side."""
from ivoryos_plugin import Plugin

plugin = Plugin("upstream_demo", __name__, title="Upstream demo")


@plugin.route("/")
def main():
    return plugin.render("upstream_demo.html")


@plugin.on("ping")
def ping(data):
    return {"pong": data}
