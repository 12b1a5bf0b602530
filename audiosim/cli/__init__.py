"""The ``audiosim`` command: :mod:`~audiosim.cli.main` parses and dispatches, one module per command
(``ingest``, ``catalog``, ``index``, ``identify``, ``monitor``, ``train``, ``serve``, ``similar``, ``moods``,
``report``, ``demo``), :mod:`~audiosim.cli.output` writes every table, CSV and JSON, :mod:`~audiosim.cli.options`
holds the options several commands share. Command modules import the stages they run inside
``run()`` so that ``--help`` answers at once. Nothing in audiosim imports this package.
"""
