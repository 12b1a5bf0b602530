"""Playlist-similarity reports people can read.

- :mod:`~audiosim.report.playlist`: reading a playlist and resolving its entries to catalogue tracks.
- :mod:`~audiosim.report.analysis`: :class:`~audiosim.report.analysis.PlaylistReport` and its tables.
- :mod:`~audiosim.report.figures`: the report's matplotlib figures.
- :mod:`~audiosim.report.html`: the page, rendered from a Jinja2 template with autoescape.
- :mod:`~audiosim.report.write`: writing the page, CSV tables and Markdown summary.
"""
