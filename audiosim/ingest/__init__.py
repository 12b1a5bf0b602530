"""ingest: see the README's module table."""
