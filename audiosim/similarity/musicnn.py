"""musicnn, the pretrained music-tagging network, in pure torch.

musicnn (Pons and Serra, "musicnn: pre-trained convolutional neural networks
for music audio tagging", 2019; PyPI ``musicnn`` 0.1.0, ISC licence) reads
3-second log-mel patches and predicts 50 tags. Two models ship in
``models/musicnn/``, converted from the wheel's TensorFlow checkpoints by
``scripts/convert_musicnn.py``: ``msd`` (trained on Million Song Dataset
previews, Last.fm tags such as happy, sad, chill, Mellow) and ``mtt``
(MagnaTagATune: quiet, loud, soft, slow, fast, ...). Their training audio is
licensed for non-commercial research only; see ``models/musicnn/README.md``.

The network, per patch of 187 frames x 96 mel bands:

* front end: a batch norm of the input, then "musically motivated" filters:
  two timbral ones (7 frames x 38 or 67 bands, 204 maps each) and three
  temporal ones (128, 64 or 32 frames x 1 band, 51 maps each), each
  ReLU, batch norm, max over frequency: 561 channels per frame;
* mid end: three 1-d convolutions over time (7 frames, 64 channels), the
  second and third with residual connections; the front-end output and the
  three mid-end outputs are concatenated (753 channels per frame);
* back end: max and mean over time of each of the 753 channels, flattened
  interleaved (channel 0 max, channel 0 mean, channel 1 max, ...): the
  1506 *mid-level* features; batch norm, a 200-unit dense ReLU layer and
  its batch norm (the *penultimate* features), and a dense layer to the
  tag logits.

Details that decide whether the port reproduces the original: every batch
norm uses epsilon 1e-3 (TF1's default); convolutions apply ReLU *before*
their batch norm; TF's 'same' padding of the temporal filters puts the odd
extra frame of padding at the end; and the input mel is cast through
float16 before the log compression (the wheel stored it that way).

Nothing here downloads: weights and tag names are read from ``models/``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchaudio
from torch import nn
from torch.nn import functional as F

MUSICNN_DIR = Path(__file__).resolve().parents[2] / "models" / "musicnn"
MODEL_NAMES = ("msd", "mtt")

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: the length the models were trained on
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH  # centred frames: 1 + n // hop
BN_EPS = 1e-3  # TF1 batch_normalization's default
MIDLEVEL_DIM = 2 * (2 * 204 + 3 * 51 + 3 * 64)
PENULTIMATE_DIM = 200
EVAL_CHUNK = 8
"""Patches run through the network at once in eval mode: the front end's
maps of a larger batch outgrow the CPU caches and cost page faults."""


# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _mel_filters() -> torch.Tensor:
    """The (257, 96) mel filter bank librosa uses by default (Slaney scale, area-normalised)."""
    return torchaudio.functional.melscale_fbanks(
        n_freqs=N_FFT // 2 + 1, f_min=0.0, f_max=SAMPLE_RATE / 2, n_mels=N_MELS,
        sample_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney",
    ).to(torch.float64)


def musicnn_input(wave_16k: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The model's input patches for a mono 16 kHz waveform.

    The mel power spectrogram the wheel computed with librosa (96 Slaney
    bands, n_fft 512, hop 256, Hann window, frames centred by reflection
    padding), cast to float16 and back, then ``log10(10000 * mel + 1)``,
    cut into consecutive non-overlapping patches of 187 frames (3 s); a
    remainder shorter than a patch is dropped, as the wheel did.

    Parameters
    ----------
    wave_16k : array or tensor, shape (n_samples,)
        Mono audio at 16 kHz, floats in [-1, 1]; at least 2.976 s
        (``MIN_SAMPLES``), the span of one patch.

    Returns
    -------
    torch.Tensor, shape (n_patches, 187, 96), float32
        Time by mel band, as :class:`Musicnn` takes it.

    Raises
    ------
    ValueError
        If the wave is not one-dimensional or shorter than one patch.
    """
    wave = torch.as_tensor(wave_16k)
    if wave.ndim != 1:
        raise ValueError(f"musicnn_input takes a mono wave of shape (n_samples,), got shape {tuple(wave.shape)}")
    if wave.numel() < MIN_SAMPLES:
        raise ValueError(
            f"musicnn needs at least {MIN_SAMPLES} samples ({MIN_SAMPLES / SAMPLE_RATE:.3f} s at 16 kHz) "
            f"for one patch, got {wave.numel()}"
        )
    spec = torch.stft(
        wave.to(torch.float64), n_fft=N_FFT, hop_length=HOP_LENGTH,
        window=torch.hann_window(N_FFT, dtype=torch.float64), center=True, pad_mode="reflect",
        return_complex=True,
    )
    mel = (spec.abs() ** 2).T @ _mel_filters()
    logmel = torch.log10(10000 * mel.to(torch.float16).to(torch.float32) + 1)
    n_patches = logmel.shape[0] // PATCH_FRAMES
    return logmel[: n_patches * PATCH_FRAMES].reshape(n_patches, PATCH_FRAMES, N_MELS).contiguous()


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------


class MusicnnOutput(NamedTuple):
    """Per-patch outputs of :class:`Musicnn`."""

    tags: torch.Tensor         # (n_patches, n_tags) sigmoid probabilities
    midlevel: torch.Tensor     # (n_patches, 1506) max and mean over time, interleaved
    penultimate: torch.Tensor  # (n_patches, 200) the batch-normed dense layer


class _FrontEndBlock(nn.Module):
    """A convolution over (time, mel), ReLU, batch norm, and max over the mel axis."""

    def __init__(self, channels: int, kernel: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel)
        self.norm = nn.BatchNorm2d(channels, eps=BN_EPS)
        frames = kernel[0] - 1  # TF 'same' along time: the odd extra frame goes at the end
        self.time_pad = (frames // 2, frames - frames // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.time_pad))
        if self.training:
            return self.norm(F.relu(self.conv(x))).amax(dim=3)
        # In eval mode batch norm is ``a * v + b`` per channel and ReLU is monotonic, so the max over
        # frequency commutes with both (through the min where ``a < 0``, which is minus the max of the
        # negated filter): reduce the large map first, then apply them to (batch, channels, frames).
        a = self.norm.weight / torch.sqrt(self.norm.running_var + self.norm.eps)
        b = self.norm.bias - self.norm.running_mean * a
        sign = torch.where(a >= 0, 1.0, -1.0)
        # A filter whose weights are all zero answers its bias everywhere: most of the shipped MSD
        # model's are (180 of 204 in the first timbral block), so only the others are convolved.
        live = self.conv.weight.flatten(1).any(dim=1)
        frames = x.shape[2] - self.conv.kernel_size[0] + 1
        peak = self.conv.bias[None, :, None].expand(x.shape[0], -1, frames).clone()
        s = sign[live]
        y = F.conv2d(x, self.conv.weight[live] * s[:, None, None, None], self.conv.bias[live] * s)
        peak[:, live] = y.amax(dim=3) * s[:, None]
        return F.relu(peak) * a[:, None] + b[:, None]


class _MidEndBlock(nn.Module):
    """A 7-frame 1-d convolution over time (zero-padded to keep the length), ReLU, batch norm."""

    def __init__(self, in_channels: int, channels: int = 64):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, channels, 7)
        self.norm = nn.BatchNorm1d(channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.conv(F.pad(x, (3, 3)))))


class Musicnn(nn.Module):
    """The musicnn architecture (``build_musicnn`` of the wheel: 64 mid-end filters, 200 dense units).

    Parameters
    ----------
    n_tags : int
        Number of output tags (50 for both shipped models).

    Notes
    -----
    Inference only: the module is meant to run in eval mode with the
    converted batch-norm statistics (dropout of the original is omitted,
    it is the identity at inference).
    """

    def __init__(self, n_tags: int = 50):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1, eps=BN_EPS)
        # the timbral filters span 40 % and 70 % of the 96 bands; the wheel pads time by 3 either side
        self.timbral = nn.ModuleList([_FrontEndBlock(204, (7, 38)), _FrontEndBlock(204, (7, 67))])
        self.temporal = nn.ModuleList([_FrontEndBlock(51, (k, 1)) for k in (128, 64, 32)])
        self.midend = nn.ModuleList([_MidEndBlock(2 * 204 + 3 * 51), _MidEndBlock(64), _MidEndBlock(64)])
        self.pool_norm = nn.BatchNorm1d(MIDLEVEL_DIM, eps=BN_EPS)
        self.dense = nn.Linear(MIDLEVEL_DIM, PENULTIMATE_DIM)
        self.dense_norm = nn.BatchNorm1d(PENULTIMATE_DIM, eps=BN_EPS)
        self.output = nn.Linear(PENULTIMATE_DIM, n_tags)

    def forward(self, patches: torch.Tensor) -> MusicnnOutput:
        """Tags and features of input patches.

        Parameters
        ----------
        patches : torch.Tensor, shape (n_patches, n_frames, 96)
            Output of :func:`musicnn_input` (any n_frames of at least 7
            works; the models were trained on 187).
        """
        if patches.ndim != 3 or patches.shape[2] != N_MELS:
            raise ValueError(f"Musicnn takes patches of shape (n, frames, {N_MELS}), got {tuple(patches.shape)}")
        if not self.training and patches.shape[0] > EVAL_CHUNK:  # each patch on its own: the same values
            parts = [self(chunk) for chunk in torch.split(patches, EVAL_CHUNK)]
            return MusicnnOutput(*(torch.cat(field) for field in zip(*parts)))
        x = self.input_norm(patches.unsqueeze(1))
        front = torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)
        m1 = self.midend[0](front)
        m2 = self.midend[1](m1) + m1
        m3 = self.midend[2](m2) + m2
        frames = torch.cat([front, m1, m2, m3], dim=1)
        midlevel = torch.stack([frames.amax(dim=2), frames.mean(dim=2)], dim=2).flatten(1)
        penultimate = self.dense_norm(F.relu(self.dense(self.pool_norm(midlevel))))
        return MusicnnOutput(torch.sigmoid(self.output(penultimate)), midlevel, penultimate)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def tag_names(name: str) -> list[str]:
    """The tag names of model ``name`` (``"msd"`` or ``"mtt"``), in output order."""
    _check_name(name)
    return json.loads((MUSICNN_DIR / "tags.json").read_text())[name]


@lru_cache(maxsize=None)
def load_musicnn(name: str = "msd") -> Musicnn:
    """The shipped model ``name`` (``"msd"`` or ``"mtt"``), float32, in eval mode, frozen.

    The weights are stored in float16 (half the size) and widened on load;
    the module is cached, so callers share one instance: do not train it.
    """
    _check_name(name)
    state = torch.load(MUSICNN_DIR / f"{name}_musicnn.pt", map_location="cpu", weights_only=True)
    model = Musicnn(n_tags=len(tag_names(name)))
    model.load_state_dict(state)
    model.eval()
    model.requires_grad_(False)
    return model


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown musicnn model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


# --------------------------------------------------------------------------
# Tags and features of a wave
# --------------------------------------------------------------------------


class MusicnnFeatures(NamedTuple):
    """Per-patch features of a wave (one row per 3-second patch)."""

    midlevel: np.ndarray     # (n_patches, 1506) float32
    penultimate: np.ndarray  # (n_patches, 200) float32


def _run(wave: np.ndarray | torch.Tensor, sr: int, model: str | Musicnn) -> MusicnnOutput:
    if sr != SAMPLE_RATE:
        raise ValueError(
            f"musicnn listens at {SAMPLE_RATE} Hz, got a wave at {sr} Hz: decode or resample it to 16 kHz first"
        )
    net = load_musicnn(model) if isinstance(model, str) else model
    with torch.inference_mode():
        return net(musicnn_input(wave))


def tags(wave: np.ndarray | torch.Tensor, sr: int, model: str | Musicnn = "msd") -> np.ndarray:
    """Tag probabilities of a wave, averaged over its 3-second patches.

    Parameters
    ----------
    wave : array or tensor, shape (n_samples,)
        Mono audio, at least one patch (2.976 s) long.
    sr : int
        Its sample rate; must be 16000 (stated so that a wave at another
        rate fails loudly instead of being tagged as if it were sped up).
    model : {"msd", "mtt"} or Musicnn
        Which model; names index :func:`tag_names`.

    Returns
    -------
    np.ndarray, shape (n_tags,), float32
        Mean sigmoid output per tag. The values are small probabilities;
        compare them across songs (rank within a catalogue), not to 0.5.
    """
    return _run(wave, sr, model).tags.mean(dim=0).numpy()


def features(wave: np.ndarray | torch.Tensor, sr: int, model: str | Musicnn = "msd") -> MusicnnFeatures:
    """Mid-level pooled and penultimate features of each 3-second patch of a wave.

    Parameters are those of :func:`tags`. Pool the rows (e.g. mean over
    excerpts) for a song vector.
    """
    out = _run(wave, sr, model)
    return MusicnnFeatures(out.midlevel.numpy(), out.penultimate.numpy())
