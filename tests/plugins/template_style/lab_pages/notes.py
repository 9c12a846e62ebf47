"""A left-panel widget in the template's style. Its init_socketio is a module-level function only
(not set on the Blueprint), as the template writes it: IvoryOS 0.1.x called it through the
module-form entry point."""
import os

from flask import Blueprint, render_template
from flask_socketio import emit

notes = Blueprint("notes", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))
notes.plugin_type = "left_panel"


def init_socketio(socketio):
    """Attach SocketIO to this plugin."""

    @socketio.on("notes_ping")
    def handle_notes_ping(data=None):
        emit("notes_pong", {"plugin": "notes"})


@notes.route("/widget")
def widget():
    return render_template("widget.html", title="Notes", text="Bench notes: calibrate the balance on Mondays.")
