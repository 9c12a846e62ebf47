"""A second left-panel widget (IvoryOS itself shows only the first left panel)."""
import os

from flask import Blueprint, render_template

camera = Blueprint("camera", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))
camera.plugin_type = "left_panel"


@camera.route("/widget")
def widget():
    return render_template("widget.html", title="Camera", text="Camera 1: the hood is clear.")
