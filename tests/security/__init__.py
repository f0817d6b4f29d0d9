"""The security suite: authorization matrix, hostile input, limits and fault scenarios."""
