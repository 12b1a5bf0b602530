"""Identify clips: from a clip's segments to "this track, at this offset" or "not in the catalogue".

- :mod:`~audiosim.match.voting`: query segments vote for (track, offset) candidates.
- :mod:`~audiosim.match.verify`: each candidate is verified by aligned similarity.
- :mod:`~audiosim.match.scoring`: a clip's score at its speeds.
- :mod:`~audiosim.match.clips`: reading a clip (file or array) for a lookup.
- :mod:`~audiosim.match.calibrate`: no-match thresholds from absent music (returns records, never publishes).
- :mod:`~audiosim.match.matcher`: :class:`~audiosim.match.matcher.Matcher` decides and names; ``identify()``.
- :mod:`~audiosim.match.monitor`: a timeline of what plays in a long recording.
"""
