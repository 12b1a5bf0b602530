"""Song similarity, descriptors and moods.

- :mod:`~audiosim.similarity.model`: the song model and the maths of clip and song vectors.
- :mod:`~audiosim.similarity.musicnn`: the pretrained musicnn tagger in pure torch.
- :mod:`~audiosim.similarity.vectors`: song vectors of catalogue tracks, cached by content hash.
- :mod:`~audiosim.similarity.song_index`: the song index and ``similar()``.
- :mod:`~audiosim.similarity.tags`: musicnn tags ranked within the catalogue (``audiosim tags``).
- :mod:`~audiosim.similarity.song_training`: a song head trained with song triplets (evaluated by
  ``benchmarks/similarity.py``; it did not beat the frozen features, so none ships), and soundtrack scores.
- :mod:`~audiosim.similarity.descriptors`: librosa descriptors (tempo, key, loudness, brightness, ...).
- :mod:`~audiosim.similarity.mood`: valence and arousal from descriptors and tags, and mood groups, with the
  reasons behind each label.
"""
