"""The fingerprint index: Annoy shards of segment vectors, published atomically.

- :mod:`~audiosim.index.manifest`: the manifest (shards, tombstones, configs), the index's source of truth.
- :mod:`~audiosim.index.thresholds`: the typed no-match calibration record and the :class:`~audiosim.index.thresholds.Calibrator` a writer is given.
- :mod:`~audiosim.index.reader`: open an index, search it, read a track's segments back.
- :mod:`~audiosim.index.writer`: update, compact, tombstone, publish; one writer at a time under a lock.
- :mod:`~audiosim.index.hubs`: hub scores of indexed segments (items near everything).
- :mod:`~audiosim.index.settings`: index settings asked for by a user, reconciled with the stored ones.

This package never imports :mod:`audiosim.match`: a writer that should calibrate is handed the calibrator.
"""
