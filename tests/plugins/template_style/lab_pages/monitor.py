"""A lab's monitor page, written from the official IvoryOS plugin template: a plain Blueprint, the
template's base_exists switch, the deck's hardware through IvoryOS's global_state, and Socket.IO
handlers on the default namespace (a 'connect' greeting and the template's plugin_ping/plugin_pong)."""
import os

from flask import Blueprint, current_app, render_template
from flask_socketio import emit

from ivoryos import global_state

monitor = Blueprint("monitor", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))

socketio = None


def init_socketio(sio):
    """Attach SocketIO to this plugin."""
    global socketio
    socketio = sio

    @socketio.on("connect")
    def handle_connect():
        emit("plugin_hello", {"plugin": "monitor"})

    @socketio.on("plugin_ping")
    def handle_ping(data=None):
        emit("plugin_pong", {"plugin": "monitor"})


monitor.init_socketio = init_socketio


@monitor.route("/")
def main():
    base_exists = "base.html" in current_app.jinja_loader.list_templates()
    deck = global_state.deck
    reading = deck.thermometer.read() if deck is not None else "No active deck"
    return render_template("monitor.html", base_exists=base_exists, reading=reading)
