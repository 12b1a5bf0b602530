"""index: see the README's module table."""
