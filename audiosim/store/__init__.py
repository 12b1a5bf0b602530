"""store: see the README's module table."""
