"""Uploads: raw PCM read as the samples it holds, and what a PCM request must say."""

from __future__ import annotations

import numpy as np
import pytest

from audiosim.api.errors import BadInput
from audiosim.api.uploads import PcmFormat


def test_int16_pcm_is_scaled_to_minus_one_to_one_and_channels_deinterleaved() -> None:
    raw = np.array([[-32768, 0], [16384, 32767]], "<i2").tobytes()
    x = PcmFormat("int16", 8000, channels=2).samples(raw, "c")
    assert x.shape == (2, 2) and x.dtype == np.float32
    assert x[0, 0] == -1.0 and x[1, 0] == 0.5 and x[0, 1] == 0.0


def test_float32_pcm_is_read_as_it_is() -> None:
    y = np.array([0.1, -0.2, 0.3], np.float32)
    assert np.array_equal(PcmFormat("float32", 8000).samples(y.astype("<f4").tobytes(), "c")[:, 0], y)


def test_a_file_upload_has_no_pcm_format_and_half_a_pcm_format_is_a_400() -> None:
    assert PcmFormat.from_form(None, None, None) is None
    assert PcmFormat.from_form("int16", 44100, None) == PcmFormat("int16", 44100, 1)
    with pytest.raises(BadInput) as e:
        PcmFormat.from_form(None, 44100, None)
    assert e.value.status == 400
