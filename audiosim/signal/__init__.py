"""Audio as numbers: pure functions on arrays and tensors, plus decoding.

- :mod:`~audiosim.signal.audio`: decode any supported file to mono float32 at a rate, streamed; :class:`~audiosim.signal.audio.AudioError` names file and reason.
- :mod:`~audiosim.signal.resample`: resample whole or block by block, in bounded memory for any pair of rates.
- :mod:`~audiosim.signal.container`: the length a file's container states, to notice a file cut short.
- :mod:`~audiosim.signal.features`: log-mel spectrograms and ~1 s segments (torchaudio ``functional`` style, no I/O).
- :mod:`~audiosim.signal.augment`: seeded degradations on batches (noise, reverb, band, speed, codecs) for training and benchmarks.
"""
