"""cli: see the README's module table."""
