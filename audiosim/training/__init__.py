"""training: see the README's module table."""
