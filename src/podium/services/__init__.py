"""Use cases: the permission core applied to what the store holds, events out on the bus."""
