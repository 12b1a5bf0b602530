"""The data home and how things are written to it.

- :mod:`~audiosim.store.atomic`: the one writer (temp file, fsync, rename) and the clean-up of dead writers' temp files.
- :mod:`~audiosim.store.home`: :class:`~audiosim.store.home.DataHome`, the layout of a data home, resolved once at the edge.
- :mod:`~audiosim.store.content`: files keyed by the content hash of the audio they came from (features and caches).
- :mod:`~audiosim.store.catalog`: the SQLite catalogue of tracks.
- :mod:`~audiosim.store.errors`: :class:`~audiosim.store.errors.DiskFullError`, one error for a full disk whatever raised it.
"""
