"""The fingerprint encoder: log-mel segment in, L2-normalised embedding out.

Six blocks of factorised convolutions (1x3 along time, then 3x1 along
frequency, each with stride 2), global max-pool, and a two-layer projection,
small enough to embed on a laptop CPU. A checkpoint carries a card (configs,
data, metrics) and is refused when the feature settings it was trained with
differ. An encoder loaded from a checkpoint carries a :class:`ModelIdentity`
(path, digest, card); :func:`model_digest` names any encoder.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiosim.config import FeatureConfig, ModelConfig
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
        x = F.relu(self.bn1(self.time(x)))
        return F.relu(self.bn2(self.freq(x)))


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
        """A copy in eval mode with each BatchNorm folded into its convolution.

        Same embeddings (to float rounding), less work per segment. Meant for
        indexing and lookups only: its state dict has no BatchNorm entries, so
        do not save or train it.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        fast = copy.deepcopy(self).eval()
        for block in fast.blocks:
            block.time = fuse_conv_bn_eval(block.time, block.bn1)
            block.freq = fuse_conv_bn_eval(block.freq, block.bn2)
            block.bn1, block.bn2 = nn.Identity(), nn.Identity()
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
        self.eval()
        out = [self(segs[i : i + batch_size]) for i in range(0, segs.shape[0], batch_size)]
        self.train(was_training)
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
        Further objects stored in the checkpoint (e.g. optimiser state).
    """
    card = dict(card or {})
    card.update(
        model_config=model.config.to_dict(),
        feature_config=model.features.to_dict(),
        parameters=model.n_parameters(),
    )
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "card": card, **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(Path(path).with_suffix(".json"), (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (weights, card, and whatever else was saved)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


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
