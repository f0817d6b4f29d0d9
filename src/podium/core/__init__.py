"""The permission core: pure data and decisions, no I/O.

Everything here is deterministic: inputs in, decisions out. Services feed it
what they read from the store and act on what it returns.
"""
