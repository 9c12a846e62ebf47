"""An acquisition script on another machine, publishing into the probe plugin's pages."""
import sys

import ivoryos_plugin

pub = ivoryos_plugin.publisher("probe", sys.argv[1])  # e.g. redis://127.0.0.1:6379/0
pub.publish("note", {"value": "from-acquisition-pc"})
