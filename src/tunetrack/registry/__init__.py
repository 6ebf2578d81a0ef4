"""tunetrack.registry."""
