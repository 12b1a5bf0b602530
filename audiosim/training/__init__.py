"""Training the fingerprint encoder with triplet loss.

- :mod:`~audiosim.training.triplet`: triplet loss and in-batch mining.
- :mod:`~audiosim.training.data`: tracks, splits, decoded audio, noise bank, batches of (anchor, positive) pairs.
- :mod:`~audiosim.training.validate`: held-out validation by degradation.
- :mod:`~audiosim.training.loop`: the training loop (nanoGPT style: read it top to bottom), checkpoints and resume.
- :mod:`~audiosim.training.retrain`: the weekly retrain: score candidate against current, promote atomically.
"""
