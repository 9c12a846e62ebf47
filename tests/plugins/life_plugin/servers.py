"""Module-level test plugins for server subprocesses (``ivoryos-plugin run life_plugin.servers:life``).

``LIFE_STUBBORN=1`` gives ``life`` a worker that ignores stop forever."""
from __future__ import annotations

import os

from life_plugin import make_broken, make_crashy, make_homing, make_life, make_migrating, make_refusing

life = make_life(stubborn=os.environ.get("LIFE_STUBBORN") == "1")
crashy = make_crashy(backoff=0.1, max_crashes=3)
refusing = make_refusing()
broken = make_broken()
migrating = make_migrating()
homing = make_homing()
