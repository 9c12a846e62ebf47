"""Layer 2: the deck and its instruments, plain Python. Instrument lookup, per-instrument locks,
``observe``, the hardware gate (fails closed), serial helpers and simulated instruments."""
