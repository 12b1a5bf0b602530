"""similarity: see the README's module table."""
