"""``python -m ivoryos_plugin.tools.cli``: the ``ivoryos-plugin`` command."""
from . import main

if __name__ == "__main__":  # pragma: no cover
    main()
