"""RIFF WAV reading in every PCM width, channel mixing, writing, and clean errors."""

import numpy as np
import pytest
from scipy.io import wavfile

from speechgen.data.audio import read_audio, write_wav
from speechgen.errors import SpeechgenError


@pytest.mark.parametrize(
    "dtype, full_scale, offset",
    [(np.uint8, 128, 128), (np.int16, 2**15, 0), (np.int32, 2**31, 0)],
)
def test_integer_pcm_scaled_to_unit_range(tmp_path, dtype, full_scale, offset):
    raw = np.array([0, 1, -1, 100, -100], dtype=np.int64) + offset
    path = tmp_path / "x.wav"
    wavfile.write(path, 8000, raw.astype(dtype))
    audio = read_audio(path)
    assert audio.rate == 8000 and len(audio) == 5
    np.testing.assert_allclose(audio.read(), (raw - offset) / full_scale, rtol=0, atol=1e-9)


def test_24_bit_pcm_written_by_hand(tmp_path):
    # scipy cannot write 24-bit: build the RIFF file by hand (3 little-endian bytes per sample).
    import struct

    values = [0, 1, -1, 2**23 - 1, -(2**23)]
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 16000 * 3, 3, 24)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "x24.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    audio = read_audio(path)
    np.testing.assert_allclose(audio.read(), np.array(values) / 2**23, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_wav_used_as_is(tmp_path, dtype):
    raw = np.array([0.0, 0.5, -0.25, 0.999], dtype=dtype)
    wavfile.write(tmp_path / "f.wav", 16000, raw)
    np.testing.assert_allclose(read_audio(tmp_path / "f.wav").read(), raw, atol=1e-7)


def test_channels_are_averaged_to_mono(tmp_path):
    stereo = np.array([[1000, 3000], [-2000, 0]], dtype=np.int16)
    wavfile.write(tmp_path / "s.wav", 8000, stereo)
    audio = read_audio(tmp_path / "s.wav")
    assert audio.channels == 2
    np.testing.assert_allclose(audio.read(), [2000 / 32768, -1000 / 32768], atol=1e-7)


def test_reading_is_memory_mapped_and_ranges_work(tmp_path):
    raw = np.arange(-500, 500, dtype=np.int16)
    wavfile.write(tmp_path / "r.wav", 8000, raw)
    audio = read_audio(tmp_path / "r.wav")
    assert isinstance(audio.raw, np.memmap)
    np.testing.assert_allclose(audio.read(10, 20), raw[10:20] / 32768)
    assert np.concatenate(list(audio.chunks())).shape == (1000,)


def test_write_wav_round_trip_and_clipping(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 2.0, -2.0])
    write_wav(tmp_path / "o.wav", 16000, x)
    rate, pcm = wavfile.read(tmp_path / "o.wav")
    assert rate == 16000 and pcm.dtype == np.int16
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, -32767])
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]  # no temporary left behind


def _error(path):
    with pytest.raises(SpeechgenError) as info:
        read_audio(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_errors_name_the_file_and_the_problem(tmp_path):
    assert "no such file" in _error(tmp_path / "missing.wav")
    assert "directory" in _error(tmp_path)
    (tmp_path / "text.wav").write_text("hello, not audio at all")
    assert "not a WAV" in _error(tmp_path / "text.wav")
    wavfile.write(tmp_path / "ok.wav", 8000, np.zeros(100, np.int16))
    (tmp_path / "trunc.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:30])
    assert "corrupt" in _error(tmp_path / "trunc.wav")
    wavfile.write(tmp_path / "empty.wav", 8000, np.zeros(0, np.int16))
    assert "no samples" in _error(tmp_path / "empty.wav")
    wavfile.write(tmp_path / "nan.wav", 8000, np.array([0.0, np.nan], np.float32))
    assert "NaN" in _error(tmp_path / "nan.wav")
