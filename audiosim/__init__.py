"""audiosim."""
