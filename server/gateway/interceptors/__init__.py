"""Server interceptors, one per file."""
