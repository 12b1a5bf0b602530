"""The fingerprint encoder: log-mel segment in, L2-normalised embedding out.

Six blocks of factorised convolutions (1x3 along time, then 3x1 along
frequency, each with stride 2), global max-pool, and a two-layer projection,
small enough to embed on a laptop CPU. A checkpoint carries a card (configs,
data, metrics) and is refused when the feature settings it was trained with
differ. An encoder loaded from a checkpoint carries a :class:`ModelIdentity`
(path, digest, card); :func:`model_digest` names any encoder.

Checkpoints are user-reachable files (``--model``, ``train --init-from``,
resume files, the model path an index's manifest records), so they hold
tensors and plain data only (dicts, lists, tuples, str, int, float, bool,
None) and are read with ``torch.load(..., weights_only=True)``: a file whose
unpickling would build any other object, and so could run code, is refused
with :class:`UnsafeCheckpointError` before anything in it runs (any other
file that is no checkpoint: :class:`CheckpointError`, its base).
:func:`save_encoder` refuses to write a checkpoint that would not load so.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiosim.config import FeatureConfig, ModelConfig
from audiosim.fingerprint.errors import CheckpointError, UnsafeCheckpointError
from audiosim.signal.features import normalise
from audiosim.store.atomic import atomic_write_bytes

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_FINGERPRINT_MODEL = MODELS_DIR / "fingerprint.pt"


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.time = nn.Conv2d(c_in, c_out, (1, 3), stride=(1, 2), padding=(0, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.freq = nn.Conv2d(c_out, c_out, (3, 1), stride=(2, 1), padding=(1, 0), bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.time(x)), inplace=True)
        return F.relu(self.bn2(self.freq(x)), inplace=True)


@dataclass(frozen=True)
class ModelIdentity:
    """Where a loaded encoder came from.

    Attributes
    ----------
    path : str
        The checkpoint file, resolved (workers and later index updates load it from there).
    digest : str
        :func:`file_digest` of that file: what indexes and caches record.
    card : dict
        The checkpoint's card (configs, data used, training settings, metrics).
    """

    path: str
    digest: str
    card: dict[str, Any] = field(default_factory=dict)


class Encoder(nn.Module):
    """Map ``(batch, n_mels, frames)`` log-mel segments to unit vectors.

    Parameters
    ----------
    config : ModelConfig
        Channel widths, hidden and embedding sizes.
    features : FeatureConfig
        The feature settings the encoder expects; stored in checkpoints.

    Attributes
    ----------
    identity : ModelIdentity or None
        Set by :func:`load_encoder`; None for an encoder made in memory.
    """

    identity: ModelIdentity | None

    def __init__(self, config: ModelConfig = ModelConfig(), features: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.config = config
        self.features = features
        self.identity = None
        chans = (1, *config.channels)
        self.blocks = nn.Sequential(*[_Block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.head = nn.Sequential(
            nn.Linear(chans[-1], config.hidden_dim),
            nn.ELU(),
            nn.Linear(config.hidden_dim, config.embedding_dim),
        )

    def forward(self, segs: torch.Tensor) -> torch.Tensor:
        x = normalise(segs).unsqueeze(1)
        x = self.blocks(x)
        x = torch.amax(x, dim=(-2, -1))
        return F.normalize(self.head(x), dim=-1)

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    def for_inference(self) -> "Encoder":
        """A copy in eval mode with each BatchNorm folded into its convolution
        and the convolutions' weights in channels-last layout.

        Same embeddings (to float rounding), less work per segment: the small
        (1, 3) and (3, 1) convolutions run much faster on the CPU in
        channels-last layout than in PyTorch's default one. Meant for indexing
        and lookups only: its state dict has no BatchNorm entries, so do not
        save or train it.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        fast = copy.deepcopy(self).eval()
        for block in fast.blocks:
            block.time = fuse_conv_bn_eval(block.time, block.bn1)
            block.freq = fuse_conv_bn_eval(block.freq, block.bn2)
            block.bn1, block.bn2 = nn.Identity(), nn.Identity()
        fast.blocks.to(memory_format=torch.channels_last)
        return fast

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @torch.inference_mode()
    def embed(self, segs: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """Embed many segments in batches, in eval mode, without gradients.

        Small batches keep the activations in the CPU caches, which is
        faster than large ones (``benchmarks/embed.py`` measures it).

        Returns
        -------
        Tensor, shape (n, embedding_dim), float32
        """
        was_training = self.training
        if was_training:  # train() walks every submodule: not per lookup
            self.eval()
        out = [self(segs[i : i + batch_size]) for i in range(0, segs.shape[0], batch_size)]
        if was_training:
            self.train()
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out)


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the SHA-256 of a file (identifies a checkpoint)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def model_digest(model: Encoder | str) -> str:
    """The digest naming an encoder in indexes and caches.

    Its checkpoint's digest when it was loaded from a file, else a hash of
    its weights (so two untrained encoders are told apart); a string is
    taken as a digest already.
    """
    if isinstance(model, str):
        return model
    if model.identity is not None:
        return model.identity.digest
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return "w" + h.hexdigest()[:15]


def save_encoder(model: Encoder, path: str | Path, card: dict[str, Any] | None = None, **extra: Any) -> None:
    """Save weights, configs and a card atomically.

    Parameters
    ----------
    model : Encoder
    path : str or Path
        Destination ``.pt`` file; ``<path>.json`` receives the card too.
    card : dict, optional
        Free-form metadata (data used, training settings, metrics).
    **extra
        Further entries stored in the checkpoint (e.g. optimiser state, RNG
        states): tensors and plain data only.

    Raises
    ------
    TypeError
        If the card or an extra entry holds another kind of object (a
        ``Path``, a numpy array, a dataclass...): :func:`load_checkpoint`
        would refuse the file, so it is not written.
    """
    card = dict(card or {})
    card.update(
        model_config=model.config.to_dict(),
        feature_config=model.features.to_dict(),
        parameters=model.n_parameters(),
    )
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "card": card, **extra}, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise TypeError(
            f"not saving {path}: the checkpoint would hold objects other than tensors and plain data, "
            f"which loading refuses ({_refusal_reason(e)})"
        ) from None
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(Path(path).with_suffix(".json"), (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())


def _refused_global(error: Exception) -> str | None:
    """The object torch's weights-only unpickler refused to build, if it names one."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else None


def _refusal_reason(error: Exception) -> str:
    """What the weights-only unpickler refused, in a few words (not torch's
    advice to load the file with ``weights_only=False``)."""
    name = _refused_global(error)
    if name:
        return f"it would build {name}"
    found = re.search(r"Unsupported operand \d+", str(error))
    return found.group(0) if found else "not a torch checkpoint"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (weights, card, and whatever else was saved), safely.

    Only tensors and plain data are unpickled (``weights_only=True``); the
    shipped models, and every checkpoint and resume file :func:`save_encoder`
    writes, load so.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    UnsafeCheckpointError
        If the file holds any other object (loading it could run code).
    CheckpointError
        If the file is not a checkpoint (truncated, another format, a pickle
        the weights-only reader cannot parse, no weights or card); nothing
        in it ran either.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _refused_global(e) is None:  # not a pickle of ours at all
            raise CheckpointError(f"{path}: not a readable model checkpoint ({_refusal_reason(e)})") from None
        raise UnsafeCheckpointError(
            f"{path}: refused: this checkpoint holds objects other than tensors and plain data, and loading "
            f"them could run code; use a checkpoint written by audiosim ({_refusal_reason(e)})"
        ) from None
    except Exception as e:  # truncated, not a torch file, ...
        raise CheckpointError(f"{path}: not a readable model checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or not {"state_dict", "card"} <= ckpt.keys():
        raise CheckpointError(f"{path}: not an audiosim model checkpoint (no weights and card)")
    return ckpt


def load_encoder(path: str | Path = DEFAULT_FINGERPRINT_MODEL, features: FeatureConfig | None = None) -> Encoder:
    """Load an encoder in eval mode, checking its feature settings.

    The encoder's :attr:`Encoder.identity` records the checkpoint (resolved
    path, digest, card).

    Parameters
    ----------
    path : str or Path
        A checkpoint written by :func:`save_encoder`.
    features : FeatureConfig, optional
        The feature settings the caller will feed; a checkpoint trained with
        other settings raises :class:`~audiosim.config.ConfigMismatchError`.

    Raises
    ------
    FileNotFoundError, UnsafeCheckpointError, CheckpointError
        See :func:`load_checkpoint`.
    """
    ckpt = load_checkpoint(path)
    card = ckpt["card"]
    trained_with = FeatureConfig.from_dict(card["feature_config"])
    if features is not None:
        features.check_same(trained_with, f"model {path}")
    model = Encoder(ModelConfig.from_dict(card["model_config"]), trained_with)
    model.load_state_dict(ckpt["state_dict"])
    model.identity = ModelIdentity(str(Path(path).resolve()), file_digest(path), card)
    return model.eval()
