"""fingerprint: see the README's module table."""
