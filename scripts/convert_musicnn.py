"""Convert musicnn's TensorFlow 1 checkpoints to torch state dicts, with test references.

The ``musicnn`` 0.1.0 wheel on PyPI (ISC licence, Jordi Pons, Music
Technology Group, Universitat Pompeu Fabra) ships TF1 checkpoints of
MSD_musicnn and MTT_musicnn. This script writes, under ``models/musicnn/``:

``msd_musicnn.pt``, ``mtt_musicnn.pt``
    the weights as torch state dicts of
    :class:`audiosim.similarity.musicnn.Musicnn`, in float16 (they load
    with ``torch.load(..., weights_only=True)``);
``tags.json``
    each model's tag names in output order;
``reference.npz``
    a deterministic synthetic signal, its input patches, and the tags,
    pooled mid-level features and penultimate features the ORIGINAL graph
    (the checkpoint's own meta graph, run in TensorFlow) computes from those
    patches, once with the float32 weights and once with the float16-rounded
    weights that ship.

TensorFlow never enters audiosim: the script runs in the project's venv and
starts a second interpreter, a throwaway venv with TensorFlow, for the part
that reads checkpoints and runs the graph (``--tf-stage``, internal). The
wheel's ``extractor(..., extract_features=True)`` is deliberately not used:
its penultimate and cnn outputs repeat the first patch (an upstream bug).

How it was run::

    python3.11 -m venv /work/scratch/tfenv
    /work/scratch/tfenv/bin/pip install tensorflow-cpu   # resolved 2.21.0
    /work/scratch/tfenv/bin/pip download musicnn==0.1.0 --no-deps -d /work/scratch/tfenv_dl
    unzip /work/scratch/tfenv_dl/musicnn-0.1.0-py3-none-any.whl -d /work/scratch/musicnn_wheel
    .venv/bin/python scripts/convert_musicnn.py /work/scratch/musicnn_wheel \\
        --tf-python /work/scratch/tfenv/bin/python
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODELS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}
SAMPLE_RATE = 16000
REFERENCE_SECONDS = 7.0  # two whole 3-second patches and a remainder that is dropped

# The forward graph's tensors, by their names in the checkpoint's meta graph.
TF_INPUT = "model/Placeholder:0"
TF_IS_TRAINING = "model/Placeholder_2:0"
TF_OUTPUTS = {
    "tags": "model/Sigmoid:0",
    "midlevel": "model/Flatten/flatten/Reshape:0",
    "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",
}

# The wheel's configuration.py, in output order.
TAGS = {
    "mtt": [
        "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
        "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
        "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
        "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
        "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
        "weird", "country", "metal", "female voice", "choral",
    ],
    "msd": [
        "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
        "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
        "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
        "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
        "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
        "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
        "60s", "rnb", "indie pop", "sad", "House", "happy",
    ],
}


# --------------------------------------------------------------------------
# Inputs (project venv)
# --------------------------------------------------------------------------


def reference_signal(seconds: float = REFERENCE_SECONDS, seed: int = 14) -> np.ndarray:
    """A deterministic music-like test signal at 16 kHz, float32 in [-1, 1].

    A bass line and a three-note chord with harmonics that change every
    half second, a noise hi-hat on the beat, and a slow chirp: enough
    spectral and temporal structure to exercise every branch of the network
    (timbral and temporal filters, loud and quiet bins).
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    y = np.zeros(n)
    step = SAMPLE_RATE // 2
    for start in range(0, n, step):
        seg = slice(start, min(n, start + step))
        root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
        y[seg] += 0.3 * np.sin(2 * np.pi * root * t[seg])
        for ratio in (4.0, 5.04, 5.99):
            for harmonic in (1, 2, 3):
                y[seg] += 0.05 / harmonic * np.sin(2 * np.pi * root * ratio * harmonic * t[seg])
    beat = np.exp(-np.arange(800) / 120.0)
    for start in range(0, n - 800, SAMPLE_RATE // 4):
        y[start:start + 800] += 0.2 * beat * rng.standard_normal(800)
    y += 0.05 * np.sin(2 * np.pi * (200 * t + 300 * t ** 2 / seconds))
    return (y / np.max(np.abs(y)) * 0.8).astype(np.float32)


def reference_patches(wave: np.ndarray) -> np.ndarray:
    """The wheel's input patches for ``wave``, computed as the wheel did.

    librosa's mel spectrogram (Slaney mel scale and area normalisation,
    power 2, centred frames padded by reflection: librosa 0.7's defaults,
    which librosa 0.10 changed to zero padding), cast to float16, then
    ``log10(10000 * mel + 1)`` in float32, cut into non-overlapping
    patches of 187 frames. The explicit float32 matters: the wheel ran on
    NumPy < 1.17, whose value-based casting made ``10000 * float16`` a
    float32; NumPy 2 keeps float16 and overflows to inf for mel > 6.55.
    """
    import librosa  # the audiosim dependency; only this script's reference needs it

    mel = librosa.feature.melspectrogram(
        y=wave, sr=SAMPLE_RATE, n_fft=512, hop_length=256, n_mels=96, pad_mode="reflect",
    ).T
    logmel = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    n = (logmel.shape[0] - 187) // 187 + 1
    return np.stack([logmel[i * 187:(i + 1) * 187] for i in range(n)]).astype(np.float32)


# --------------------------------------------------------------------------
# TensorFlow stage (throwaway venv)
# --------------------------------------------------------------------------


def _tf_stage(wheel: Path, work: Path) -> None:
    """Read both checkpoints and run their original forward graphs on the patches.

    The graph is the checkpoint's own meta graph (TF 1.12, written in
    training), cut down to the forward pass; its variables are fed with
    the checkpoint's values, so no layer is rebuilt here. Writes
    ``work/tf.npz`` with every weight and, per model, the outputs for the
    float32 and for the float16-rounded weights.
    """
    import tensorflow as tf  # only in the throwaway venv
    from tensorflow.core.protobuf import meta_graph_pb2

    tf.compat.v1.disable_eager_execution()
    patches = np.load(work / "inputs.npz")["patches"]
    out: dict[str, np.ndarray] = {}
    for short, name in MODELS.items():
        prefix = str(wheel / "musicnn" / name) + "/"
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        weights = {
            k: reader.get_tensor(k)
            for k in reader.get_variable_to_shape_map()
            if not ("Adam" in k or k.startswith("beta1_power") or k.startswith("beta2_power"))
        }
        meta = meta_graph_pb2.MetaGraphDef()
        meta.ParseFromString(Path(prefix + ".meta").read_bytes())
        graph_def = meta.graph_def
        for node in graph_def.node:  # shapes recorded by TF 1.12 trip newer importers
            if "_output_shapes" in node.attr:
                del node.attr["_output_shapes"]
        ends = [t.split(":")[0] for t in TF_OUTPUTS.values()]
        forward = tf.compat.v1.graph_util.extract_sub_graph(graph_def, ends)
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(forward, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            for variant, cast in (("float32", np.float32), ("float16", np.float16)):
                feed = {graph.get_tensor_by_name(k + "/read:0"): v.astype(cast).astype(np.float32)
                        for k, v in weights.items()}
                feed[graph.get_tensor_by_name(TF_INPUT)] = patches
                feed[graph.get_tensor_by_name(TF_IS_TRAINING)] = False
                values = sess.run(list(TF_OUTPUTS.values()), feed_dict=feed)
                for key, value in zip(TF_OUTPUTS, values):
                    out[f"{short}/{variant}/{key}"] = value
        for k, v in weights.items():
            out[f"{short}/weight/{k}"] = v
    np.savez(work / "tf.npz", **out)


# --------------------------------------------------------------------------
# Weights (project venv)
# --------------------------------------------------------------------------


def _bn(prefix: str, tf_name: str, w: dict) -> dict:
    return {
        f"{prefix}.weight": w[f"{tf_name}/gamma"],
        f"{prefix}.bias": w[f"{tf_name}/beta"],
        f"{prefix}.running_mean": w[f"{tf_name}/moving_mean"],
        f"{prefix}.running_var": w[f"{tf_name}/moving_variance"],
    }


def torch_state(w: dict) -> dict:
    """Map checkpoint variables to :class:`Musicnn` state-dict entries (float32 numpy).

    TF1 names layers by creation order (``conv2d``, ``conv2d_1``, ...,
    ``batch_normalization_10``), which follows ``build_musicnn``: input
    norm; timbral 7x38 and 7x67; temporal 128, 64, 32; three mid-end
    convolutions; the pooled-feature norm; dense; its norm; the output.
    Kernels go from TF's (height, width, in, out) to torch's (out, in,
    height, width); the mid-end ones, which span the whole channel axis,
    become 1-d convolutions over time.
    """
    s = _bn("input_norm", "batch_normalization", w)
    for i, tf_i in enumerate((0, 1)):
        s[f"timbral.{i}.conv.weight"] = w[f"conv2d{_n(tf_i)}/kernel"].transpose(3, 2, 0, 1)
        s[f"timbral.{i}.conv.bias"] = w[f"conv2d{_n(tf_i)}/bias"]
        s.update(_bn(f"timbral.{i}.norm", f"batch_normalization_{tf_i + 1}", w))
    for i, tf_i in enumerate((2, 3, 4)):
        s[f"temporal.{i}.conv.weight"] = w[f"conv2d_{tf_i}/kernel"].transpose(3, 2, 0, 1)
        s[f"temporal.{i}.conv.bias"] = w[f"conv2d_{tf_i}/bias"]
        s.update(_bn(f"temporal.{i}.norm", f"batch_normalization_{tf_i + 1}", w))
    for i, tf_i in enumerate((5, 6, 7)):
        s[f"midend.{i}.conv.weight"] = w[f"conv2d_{tf_i}/kernel"][:, :, 0, :].transpose(2, 1, 0)
        s[f"midend.{i}.conv.bias"] = w[f"conv2d_{tf_i}/bias"]
        s.update(_bn(f"midend.{i}.norm", f"batch_normalization_{tf_i + 1}", w))
    s.update(_bn("pool_norm", "batch_normalization_9", w))
    s["dense.weight"] = w["dense/kernel"].T
    s["dense.bias"] = w["dense/bias"]
    s.update(_bn("dense_norm", "batch_normalization_10", w))
    s["output.weight"] = w["dense_1/kernel"].T
    s["output.bias"] = w["dense_1/bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in s.items()}


def _n(i: int) -> str:
    return "" if i == 0 else f"_{i}"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def convert(wheel: Path, tf_python: str, out_dir: Path) -> dict:
    """Run both stages and write the models, tag lists and references; return error figures.

    torch and audiosim are imported here rather than at the top because this
    same file runs as the TensorFlow stage in a venv that has neither.
    """
    import torch

    from audiosim.similarity.musicnn import Musicnn, musicnn_input
    from audiosim.store.atomic import atomic_path, atomic_write_bytes, atomic_write_json

    wave = reference_signal()
    patches = reference_patches(wave)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.savez(work / "inputs.npz", patches=patches)
        subprocess.run([tf_python, __file__, "--tf-stage", str(wheel), str(work)], check=True)
        with np.load(work / "tf.npz") as z:
            tf_out = {k: z[k] for k in z.files}

    out_dir.mkdir(parents=True, exist_ok=True)
    reference = {"wave": wave, "sample_rate": np.int64(SAMPLE_RATE), "patches": patches}
    report = {"port_input_max_abs": float(np.abs(musicnn_input(wave).numpy() - patches).max())}
    for short in MODELS:
        prefix = f"{short}/weight/"
        weights = {k[len(prefix):]: v for k, v in tf_out.items() if k.startswith(prefix)}
        state32 = {k: torch.from_numpy(v) for k, v in torch_state(weights).items()}
        state16 = {k: v.to(torch.float16) for k, v in state32.items()}
        buffer = io.BytesIO()  # saved from memory, the archive's inner name does not depend on a temp name
        torch.save(state16, buffer)
        atomic_write_bytes(out_dir / f"{short}_musicnn.pt", buffer.getvalue())
        for variant in ("float32", "float16"):
            for key in TF_OUTPUTS:
                reference[f"{short}_{key}_{variant}"] = tf_out[f"{short}/{variant}/{key}"]
        for variant, state in (("float32", state32), ("float16", state16)):
            model = Musicnn(n_tags=len(TAGS[short]))
            model.load_state_dict(state)
            model.eval()
            with torch.no_grad():
                got = model(torch.from_numpy(patches))
            expected = tf_out[f"{short}/{variant}/tags"]
            report[f"{short}_port_{variant}_tags_max_abs"] = float(np.abs(got.tags.numpy() - expected).max())
        report[f"{short}_float16_weights_tags_max_abs"] = float(
            np.abs(tf_out[f"{short}/float16/tags"] - tf_out[f"{short}/float32/tags"]).max())
    atomic_write_json(out_dir / "tags.json", TAGS)
    with atomic_path(out_dir / "reference.npz") as tmp_path:
        with open(tmp_path, "wb") as fh:
            np.savez_compressed(fh, **reference)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="the unzipped musicnn-0.1.0 wheel (holds musicnn/MSD_musicnn/)")
    parser.add_argument("work", type=Path, nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--tf-python", default="python3",
                        help="a Python with TensorFlow (tensorflow-cpu 2.x) to read the checkpoints and run the graph")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "musicnn",
                        help="output folder (default: models/musicnn)")
    parser.add_argument("--tf-stage", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tf_stage:
        _tf_stage(args.wheel, args.work)
        return 0
    report = convert(args.wheel, args.tf_python, args.out)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
