"""tunetrack.search."""
