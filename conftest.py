"""The repository's tests and the examples' tests use the framework's pytest kit (opt-in)."""
pytest_plugins = ["ivoryos_plugin.testing"]
