"""The security tests' deck: the probe and secure test plugins plus every installed plugin.

Run as a script in one of three hosts, chosen by env ``SECURE_HOST``:
``ivoryos`` (plain ``ivoryos.run``), ``standalone`` (the dev host, token ``$SECURE_TOKEN``) or
``run`` (``ivoryos_plugin.run``, the hardened launcher). ``$SECURE_ORIGINS`` (comma separated)
becomes ``IVORYOS_PLUGIN_ALLOWED_ORIGINS``. Listens on 127.0.0.1:$PORT."""
from probe_deck import Sensor  # the probe plugin's instrument, kept in step with the probe

sensor = Sensor()


def all_plugins() -> list:
    """The two test plugins, then every installed ``ivoryos.plugins`` entry point and example."""
    from probe_plugin import plugin as probe
    from secure_plugin import plugin as secure

    from ivoryos_plugin.hosts.discovery import discover

    found = discover()
    examples = discover("ivoryos_plugin.examples")  # the examples' own group (the demo loads it)
    for failure in found.failures + examples.failures:
        print(f" * plugin {failure.name!r} not loaded: {failure.error}", flush=True)
    loaded = {p.name: p for p in found.plugins + examples.plugins if p.name not in ("probe", "secure")}
    return [probe, secure] + list(loaded.values())


def main() -> None:
    """Serve on 127.0.0.1:$PORT (a function: the deck's globals are its instruments, and an app
    or config left in them would be taken for one)."""
    import os
    import sys

    mode = os.environ.get("SECURE_HOST", "ivoryos")
    port = int(os.environ["PORT"])
    origins = [o for o in os.environ.get("SECURE_ORIGINS", "").split(",") if o]
    plugins = all_plugins()
    if mode == "standalone":
        from ivoryos_plugin import create_app
        from ivoryos_plugin.hosts.devhost import serve

        app = create_app(plugins, deck=sys.modules[__name__], token=os.environ.get("SECURE_TOKEN"))
        app.config["IVORYOS_PLUGIN_ALLOWED_ORIGINS"] = origins
        serve(app, port=port)
        return
    from ivoryos.config import get_config

    config = get_config()
    config.IVORYOS_PLUGIN_ALLOWED_ORIGINS = origins
    if mode == "run":
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, plugins=plugins, port=port, config=config)
        return
    import ivoryos

    from ivoryos_plugin import IvoryOSPlugins
    from ivoryos_plugin.hosts.discovery import protect_plain

    # the explicit attach: the health page, the browser assets, and login/CSRF/headers for plain Blueprints
    framework = IvoryOSPlugins(plain=plugins, protect=protect_plain)
    ivoryos.run(__name__, host="127.0.0.1", port=port, config=config,
                blueprint_plugins=[framework.blueprint(), *plugins])


if __name__ == "__main__":
    main()
