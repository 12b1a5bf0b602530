"""Prefect flow that trains the fingerprint encoder on the catalogue's tracks.

All the work is :func:`audiosim.training.loop.train_from_tracks`; this flow gathers
the catalogue's ok tracks (:func:`audiosim.training.data.catalogue_track_refs`),
runs it, and publishes the validation curve as a table artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import flow
from prefect.artifacts import create_table_artifact

from audiosim.config import TrainConfig
from audiosim.store.home import DataHome
from audiosim.training.data import catalogue_track_refs
from audiosim.training.loop import train_from_tracks


@flow(name="train-fingerprint", log_prints=False)
def train_flow(
    home: str | None = None,
    out: str = "models/fingerprint.pt",
    steps: int = TrainConfig().steps,
    noise: Sequence[str] = (),
    speech: Sequence[str] = (),
    val_speech: Sequence[str] = (),
    resume: bool = True,
    progress: bool = False,
) -> dict:
    """Train on every ok catalogue track of ``home`` and save the best model at ``out``.

    Parameters
    ----------
    home : str, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    out : str
        Where the best checkpoint goes (its card beside it as JSON).
    steps : int
        Training steps (batches).
    noise : list of str
        Environmental recordings mixed into positives as background noise.
    speech, val_speech : list of str
        Voices for babble in training, and other voices for the
        validation's babble conditions.
    resume : bool
        Continue from ``<out>.last.pt`` when it exists.
    """
    h = DataHome.resolve(home)
    tracks = catalogue_track_refs(h)
    card = train_from_tracks(
        tracks, Path(out), h.cache_dir, noise_paths=noise, speech_paths=speech, val_speech_paths=val_speech,
        cfg=TrainConfig(steps=steps), resume=resume, progress=progress,
    )
    create_table_artifact(key="train-validation", table=card.get("history", []),
                          description=f"Validation of {out} (best at step {card.get('step')})")
    return card
