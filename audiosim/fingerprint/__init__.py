"""The fingerprint encoder and embedding audio with it.

- :mod:`~audiosim.fingerprint.model`: the encoder (``nn.Module``), saving and loading checkpoints with their card, and the typed :class:`~audiosim.fingerprint.model.ModelIdentity`.
- :mod:`~audiosim.fingerprint.embed`: log-mel segments to L2-normalised vectors, per track, with the embeddings computed ahead by workers.
"""
