"""tunetrack.tracking."""
