"""The lab's balance page, filled in from the official IvoryOS plugin template: a plain Blueprint,
the template's base_exists switch, IvoryOS's global_state.deck for the hardware, a module-level
init_socketio whose handlers live on the default namespace, and a class patch that pushes every
weighing (the page's or a workflow's) to the page."""
import os

from flask import Blueprint, Flask, current_app, render_template
from flask_socketio import emit

from ivoryos import global_state
from ivoryos_plugin.drivers import Balance

# blueprint name Blueprint('plugin', ...) needs to be unique
plugin = Blueprint("plugin", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))

socketio = None

# [class patch] every weighing, whoever asks for it, is pushed to the page
_original_weigh_sample = Balance.weigh_sample


def _weigh_and_push(self, *args, **kwargs):
    grams = _original_weigh_sample(self, *args, **kwargs)
    socketio.emit("weighed", {"grams": grams, "port": self.com_port})
    return grams


Balance.weigh_sample = _weigh_and_push


def init_socketio(sio):
    """Attach SocketIO to this plugin."""
    global socketio
    socketio = sio

    @socketio.on("connect")
    def handle_connect():
        pass

    @socketio.on("plugin_ping")
    def handle_ping(data=None):
        emit("plugin_pong", {"port": global_state.deck.balance.com_port,
                             "busy": global_state.runner_status is not None})


@plugin.route("/")
def main():
    base_exists = "base.html" in current_app.jinja_loader.list_templates()
    deck = global_state.deck
    if deck is None:
        return render_template("balance.html", base_exists=base_exists, grams=None, error="No active deck")
    grams = deck.balance.weigh_sample()
    return render_template("balance.html", base_exists=base_exists, grams=grams, error=None)


if __name__ == "__main__":
    app = Flask(__name__)
    app.register_blueprint(plugin)
    app.run()
