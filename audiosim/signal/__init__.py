"""signal: see the README's module table."""
