"""Layer 4: the apps plugins run in. The IvoryOS adapter (the one module that touches IvoryOS's
internals), the standalone dev host, the launcher ``ivoryos_plugin.run``, discovery, offline assets."""
