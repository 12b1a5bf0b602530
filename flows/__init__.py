"""Prefect flows: thin orchestration over the :mod:`audiosim` library.

Flows and tasks here hold no logic of their own; they fan out the unit of
work that ``audiosim`` defines and publish artifacts about the run.
"""
