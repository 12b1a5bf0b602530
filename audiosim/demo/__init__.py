"""demo: see the README's module table."""
