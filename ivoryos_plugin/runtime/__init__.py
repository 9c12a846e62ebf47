"""Layer 3: a plugin running in one app. Per-app state (``app.extensions["ivoryos_plugin"]``),
lifecycle, workers, live events, settings, security, tokens, the health page."""
