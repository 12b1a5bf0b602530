"""musicnn in torch reproduces the original TensorFlow graph (references in models/musicnn/reference.npz)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosim.similarity.musicnn import (
    MIDLEVEL_DIM,
    MIN_SAMPLES,
    MODEL_NAMES,
    MUSICNN_DIR,
    PATCH_FRAMES,
    PENULTIMATE_DIM,
    Musicnn,
    features,
    load_musicnn,
    musicnn_input,
    tag_names,
    tags,
)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(MUSICNN_DIR / "reference.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def port_outputs(reference):
    """The shipped models' outputs on the reference patches, computed once per module."""
    patches = torch.from_numpy(reference["patches"])
    with torch.inference_mode():
        return {name: load_musicnn(name)(patches) for name in MODEL_NAMES}


# --------------------------------------------------------------------------
# Against the original graph
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tags_match_the_original_graph_within_1e_3(name, reference, port_outputs):
    # the reference ran the original graph with the same float16-rounded weights that ship
    np.testing.assert_allclose(port_outputs[name].tags.numpy(), reference[f"{name}_tags_float16"], rtol=0, atol=1e-3)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float16_weights_change_tags_by_under_0_002(name, reference, port_outputs):
    np.testing.assert_allclose(port_outputs[name].tags.numpy(), reference[f"{name}_tags_float32"], rtol=0, atol=2e-3)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_midlevel_and_penultimate_features_match_the_original_graph(name, reference, port_outputs):
    out = port_outputs[name]
    np.testing.assert_allclose(out.midlevel.numpy(), reference[f"{name}_midlevel_float16"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out.penultimate.numpy(), reference[f"{name}_penultimate_float16"], rtol=1e-4, atol=1e-4)


def test_input_patches_match_the_wheels_librosa_front_end(reference):
    # the float16 cast can round a bin either way, hence a tolerance of a few float16 steps of the log
    np.testing.assert_allclose(musicnn_input(reference["wave"]).numpy(), reference["patches"], rtol=0, atol=2e-3)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tags_of_a_wave_match_the_original_within_1e_3(name, reference):
    expected = reference[f"{name}_tags_float16"].mean(axis=0)
    np.testing.assert_allclose(tags(reference["wave"], 16000, name), expected, rtol=0, atol=1e-3)


# --------------------------------------------------------------------------
# Weights and tag lists
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_weights_load_with_weights_only_as_a_float16_state_dict_of_the_architecture(name):
    state = torch.load(MUSICNN_DIR / f"{name}_musicnn.pt", map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())
    expected = {k for k in Musicnn().state_dict() if not k.endswith("num_batches_tracked")}
    assert set(state) == expected


def test_each_model_has_50_named_tags_including_the_mood_tags():
    msd, mtt = tag_names("msd"), tag_names("mtt")
    assert len(msd) == len(mtt) == 50
    assert {"happy", "sad", "chill", "Mellow", "party", "beautiful"} <= set(msd)
    assert {"quiet", "loud", "soft", "slow", "fast", "ambient"} <= set(mtt)


def test_an_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="msd, mtt"):
        load_musicnn("vgg")


# --------------------------------------------------------------------------
# Shapes and errors
# --------------------------------------------------------------------------


def test_input_is_consecutive_3_second_patches_of_96_bands_remainder_dropped():
    assert musicnn_input(np.zeros(MIN_SAMPLES, np.float32)).shape == (1, PATCH_FRAMES, 96)
    assert musicnn_input(np.zeros(16000 * 7, np.float32)).shape == (2, PATCH_FRAMES, 96)


def test_a_wave_shorter_than_one_patch_is_refused():
    with pytest.raises(ValueError, match="at least"):
        musicnn_input(np.zeros(MIN_SAMPLES - 1, np.float32))


def test_a_stereo_wave_is_refused():
    with pytest.raises(ValueError, match="mono"):
        musicnn_input(np.zeros((2, 16000 * 4), np.float32))


def test_a_wave_at_another_sample_rate_is_refused_with_a_clear_error(reference):
    with pytest.raises(ValueError, match="16000 Hz.*44100 Hz"):
        tags(reference["wave"], 44100)


def test_features_give_one_row_of_each_kind_per_patch(reference):
    out = features(reference["wave"][:MIN_SAMPLES], 16000, "msd")
    assert out.midlevel.shape == (1, MIDLEVEL_DIM) and out.penultimate.shape == (1, PENULTIMATE_DIM)


def test_midlevel_features_interleave_max_and_mean_of_each_channel(port_outputs):
    midlevel = port_outputs["msd"].midlevel
    # even columns are maxima over time, odd ones means (equal, up to rounding, for a constant channel)
    assert torch.all(midlevel[:, 0::2] - midlevel[:, 1::2] >= -1e-5)


def test_patches_of_the_wrong_band_count_are_refused():
    with pytest.raises(ValueError, match="96"):
        load_musicnn("msd")(torch.zeros(1, PATCH_FRAMES, 128))


def test_front_end_reduces_before_its_batch_norm_in_eval_mode_with_the_same_values():
    from audiosim.similarity.musicnn import _FrontEndBlock

    torch.manual_seed(0)
    block = _FrontEndBlock(6, (7, 5))
    with torch.no_grad():  # some channels with a negative scale: the max becomes the min there
        block.norm.weight.copy_(torch.tensor([1.5, -0.7, 0.2, -2.0, 0.0, 1.0]))
        block.norm.bias.copy_(torch.randn(6))
        block.norm.running_mean.copy_(torch.randn(6))
        block.norm.running_var.copy_(torch.rand(6) + 0.1)
    x = torch.randn(3, 1, 20, 12)
    block.eval()
    fast = block(x)
    slow = block.norm(torch.relu(block.conv(torch.nn.functional.pad(x, (0, 0, *block.time_pad))))).amax(dim=3)
    assert fast.shape == (3, 6, 20)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_front_end_skips_all_zero_filters_in_eval_mode_with_the_same_values():
    from audiosim.similarity.musicnn import _FrontEndBlock

    torch.manual_seed(1)
    block = _FrontEndBlock(5, (7, 5))
    with torch.no_grad():  # dead filters (as most of the shipped MSD model's are), one with a negative scale
        block.conv.weight[[0, 3, 4]] = 0.0
        block.norm.weight.copy_(torch.tensor([1.0, 0.5, -1.2, -0.8, 2.0]))
        block.norm.running_var.copy_(torch.rand(5) + 0.1)
    x = torch.randn(2, 1, 16, 9)
    block.eval()
    fast = block(x)
    slow = block.norm(torch.relu(block.conv(torch.nn.functional.pad(x, (0, 0, *block.time_pad))))).amax(dim=3)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for c in (0, 3, 4):  # a dead filter's output is its bias, through ReLU and batch norm, at every frame
        torch.testing.assert_close(fast[:, c], slow[:, c, :1].expand(2, 16))


def test_a_large_batch_gives_each_patch_the_outputs_it_gets_alone():
    from audiosim.similarity.musicnn import EVAL_CHUNK

    torch.manual_seed(2)
    patches = torch.rand(2 * EVAL_CHUNK + 3, PATCH_FRAMES, 96) * 3  # run in chunks
    net = load_musicnn("mtt")
    with torch.inference_mode():
        batch = net(patches)
        alone = [net(p[None]) for p in patches]
    for field, got in zip(batch._fields, batch):
        torch.testing.assert_close(got, torch.cat([getattr(a, field) for a in alone]), rtol=1e-4, atol=1e-4)
