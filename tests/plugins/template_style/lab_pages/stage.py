"""A second page from the same template, by another lab member: its Socket.IO handlers use the same
event names on the default namespace as the monitor's (the template's example names)."""
import os

from flask import Blueprint, current_app, render_template
from flask_socketio import emit

stage = Blueprint("stage", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))


def init_socketio(socketio):
    """Attach SocketIO to this plugin."""

    @socketio.on("connect")
    def handle_connect():
        emit("plugin_hello", {"plugin": "stage"})

    @socketio.on("plugin_ping")
    def handle_ping(data=None):
        emit("plugin_pong", {"plugin": "stage"})


stage.init_socketio = init_socketio


@stage.route("/")
def main():
    base_exists = "base.html" in current_app.jinja_loader.list_templates()
    return render_template("page.html", base_exists=base_exists, title="Stage")
