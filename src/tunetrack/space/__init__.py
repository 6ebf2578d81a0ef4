"""tunetrack.space."""
