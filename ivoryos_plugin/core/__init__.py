"""Layer 1 (the bottom): what a plugin's author declares. ``Plugin``, its decorators and specs, name
and version checks, and the binding to the layers above. No Flask app, no Socket.IO, no IvoryOS."""
