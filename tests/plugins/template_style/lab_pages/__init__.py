"""Test fixture: a lab's plugin pages in the official IvoryOS plugin template's style (see the modules)."""
