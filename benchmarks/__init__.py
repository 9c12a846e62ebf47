"""Benchmarks: each prints FIGURE lines (a ratio against its anchor measured in the same run)."""
