"""The HTTP and WebSocket adapters: thin shells over the services."""
