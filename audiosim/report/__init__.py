"""report: see the README's module table."""
