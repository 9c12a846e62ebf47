"""Layer 5 (the top): what developers run. The CLI, scaffolding, checks, the demo, the pytest kit."""
