"""Event envelopes and the buses that carry them between server processes."""
