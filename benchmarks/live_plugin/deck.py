"""The benchmark deck: one counting sensor (the deck module's globals are its instruments)."""
from live_plugin.sensor import Sensor

sensor = Sensor()
