"""The smallest useful plugin: a page and an action."""
from ivoryos_plugin import Plugin

plugin = Plugin("hello", __name__, title="Hello", version="1.0.0",
                description="Greets whoever presses the button.")


@plugin.route("/")
def main():
    return plugin.render("hello.html", instruments=sorted(plugin.instruments))


@plugin.action(hardware=False)
def greet(name: str = "world") -> dict:
    plugin.publish("greeted", {"name": name})
    return {"message": f"Hello, {name}!"}
