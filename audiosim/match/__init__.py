"""match: see the README's module table."""
