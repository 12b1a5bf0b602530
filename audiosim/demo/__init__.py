"""The built-in demo: :mod:`~audiosim.demo.songbook` synthesises a songbook with known moods, keys and tempi;
:mod:`~audiosim.demo.run` runs the whole pipeline on it (``make demo``). Only the CLI imports this package.
"""
