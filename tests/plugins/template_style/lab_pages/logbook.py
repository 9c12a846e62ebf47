"""A third template-style page with the same Socket.IO event names, installed with a module-form
entry point (``logbook = "lab_pages.logbook"``)."""
import os

from flask import Blueprint, current_app, render_template
from flask_socketio import emit

logbook = Blueprint("logbook", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))


def init_socketio(socketio):
    """Attach SocketIO to this plugin."""

    @socketio.on("connect")
    def handle_connect():
        emit("plugin_hello", {"plugin": "logbook"})

    @socketio.on("plugin_ping")
    def handle_ping(data=None):
        emit("plugin_pong", {"plugin": "logbook"})


logbook.init_socketio = init_socketio


@logbook.route("/")
def main():
    base_exists = "base.html" in current_app.jinja_loader.list_templates()
    return render_template("page.html", base_exists=base_exists, title="Logbook")
