"""Property tests for the WAV reader (libsndfile behind a RIFF chunk walk): no input makes
it crash, valid input round-trips.

Whatever bytes a ``.wav`` holds, :func:`speechgen.data.audio.read_audio` either raises
:class:`SpeechgenError` (one line naming the file) or returns an :class:`Audio` whose
``read()`` again only raises :class:`SpeechgenError` or returns finite float32 samples
in [-1, 1]. SPHERE and ``.PHN`` have their own fuzzing in tests/test_sphere.py and
tests/test_labels.py (see docs/errors.md).
"""

import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.io import wavfile

from speechgen.data.audio import read_audio, write_wav
from speechgen.errors import SpeechgenError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = {
    "uint8": (np.uint8, 0, 255),
    "int16": (np.int16, -(2**15), 2**15 - 1),
    "int32": (np.int32, -(2**31), 2**31 - 1),
    "float32": (np.float32, -1.0, 1.0),
}


def wav_bytes(dtype_name, channels, n, seed=0):
    """A valid RIFF WAV made by scipy: ``n`` frames of random samples."""
    dtype, lo, hi = DTYPES[dtype_name]
    rng = np.random.default_rng(seed)
    shape = (n,) if channels == 1 else (n, channels)
    if dtype_name == "float32":
        data = rng.uniform(lo, hi, size=shape).astype(np.float32)
    else:
        data = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    buf = io.BytesIO()
    wavfile.write(buf, 8000, data)
    return buf.getvalue(), data


def check_read(content):
    """The property: only SpeechgenError, or finite float32 in [-1, 1]."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.wav"
        path.write_bytes(content)
        try:
            audio = read_audio(path)
        except SpeechgenError as err:
            message = str(err)
            assert str(path) in message and "\n" not in message, message
            return None
        try:
            samples = audio.read()
        except SpeechgenError:
            return None
        assert samples.dtype == np.float32
        assert samples.shape == (len(audio),)
        assert np.isfinite(samples).all()
        assert np.abs(samples).max(initial=0) <= 1.0
        return samples


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_speechgen_error(content):
    check_read(content)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_after_a_riff_magic_only_raise_speechgen_error(content):
    check_read(b"RIFF" + struct.pack("<I", len(content) + 4) + b"WAVE" + content)


def _chunk_size_offsets(content):
    """Offsets of the 32-bit size fields: RIFF, and each chunk's (fmt, data, ...)."""
    offsets = [4]
    pos = 12
    while pos + 8 <= len(content):
        offsets.append(pos + 4)
        size = struct.unpack("<I", content[pos + 4 : pos + 8])[0]
        pos += 8 + size + (size & 1)
    return offsets


valid_wav = st.tuples(
    st.sampled_from(sorted(DTYPES)), st.sampled_from([1, 2, 3]), st.integers(0, 40), st.integers(0, 2**16)
)


@FUZZ
@given(
    valid_wav,
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
)
def test_flipped_bytes_only_raise_speechgen_error(spec, flips):
    content = bytearray(wav_bytes(*spec)[0])
    for pos, value in flips:
        content[pos % len(content)] = value
    check_read(bytes(content))


@FUZZ
@given(valid_wav, st.floats(0, 1))
def test_truncated_files_only_raise_speechgen_error(spec, where):
    content = wav_bytes(*spec)[0]
    check_read(content[: int(where * len(content))])


SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1, 2, 3, 15, 16, 17, 18, 40, 2**31 - 1, 2**31, 2**32 - 1]),
)


@FUZZ
@given(valid_wav, st.lists(st.tuples(st.integers(0, 100), SIZES), min_size=1, max_size=3))
def test_changed_chunk_sizes_only_raise_speechgen_error(spec, changes):
    content = bytearray(wav_bytes(*spec)[0])
    offsets = _chunk_size_offsets(bytes(content))
    for which, size in changes:
        at = offsets[which % len(offsets)]
        content[at : at + 4] = struct.pack("<I", size)
    check_read(bytes(content))


@FUZZ
@given(
    valid_wav,
    st.sampled_from([0, 2, 4, 6, 8, 12, 14]),  # fields of the fmt chunk, after "fmt " + size
    st.integers(0, 2**16 - 1),
)
def test_changed_format_fields_only_raise_speechgen_error(spec, field, value):
    # format tag, channels, rate (low half), byte rate (low half), block align, bit depth
    content = bytearray(wav_bytes(*spec)[0])
    at = 20 + field
    content[at : at + 2] = struct.pack("<H", value)
    check_read(bytes(content))


@FUZZ
@given(valid_wav)
def test_valid_files_read_back_what_was_written(spec):
    dtype_name, channels, n, seed = spec
    content, data = wav_bytes(dtype_name, channels, max(n, 1), seed)
    samples = check_read(content)
    assert samples is not None
    if dtype_name == "uint8":
        want = (data.astype(np.float64) - 128) / 128
    elif dtype_name == "float32":
        want = data.astype(np.float64)
    else:
        want = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    if want.ndim == 2:
        want = want.mean(axis=1)
    np.testing.assert_allclose(samples, want, rtol=0, atol=1e-6)


@FUZZ
@given(st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=200))
def test_int16_round_trip_through_write_wav(values):
    x = np.array(values, dtype=np.float64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        write_wav(path, 16000, x)
        audio = read_audio(path)
        assert audio.rate == 16000 and audio.subtype == "PCM_16" and len(audio) == len(x)
        # The PCM is exactly round(x * 32767); scaled back by the writer's 32767 it is
        # within half a step. (The reader divides by 32768, full scale of int16, which
        # is exact in float32, so read() * 32768 recovers the stored integers.)
        pcm = np.round(audio.read().astype(np.float64) * 32768)
        np.testing.assert_array_equal(pcm, np.round(x * 32767))
        back = audio.read().astype(np.float64) * 32768 / 32767
        np.testing.assert_allclose(back, x, rtol=0, atol=0.5 / 32767 + 1e-9)
        np.testing.assert_allclose(audio.read(), x, rtol=0, atol=1.5 / 32767)
        assert [p.name for p in Path(tmp).iterdir()] == ["out.wav"]


@FUZZ
@given(
    st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=200),
    st.sampled_from([1, 2]),
)
def test_float32_reads_back_exactly(values, channels):
    x = np.array(values, dtype=np.float32)
    if channels == 2:
        x = np.stack([x, x], axis=1)  # equal channels: their mean is exact
    buf = io.BytesIO()
    wavfile.write(buf, 22050, x)
    samples = check_read(buf.getvalue())
    np.testing.assert_array_equal(samples, x if channels == 1 else x[:, 0])


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_every_width_of_a_hand_made_header_reads(tmp_path, width):
    # Headers built by hand (neither scipy nor libsndfile): PCM of 1..4 bytes, 24-bit too.
    values = [0, 1, -1, 5]
    if width == 1:
        data = bytes(v + 128 for v in values)
        full = 128
    else:
        data = b"".join(v.to_bytes(width, "little", signed=True) for v in values)
        full = 2 ** (8 * width - 1)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000 * width, width, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "hand.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    np.testing.assert_allclose(read_audio(path).read(), np.array(values) / full, atol=1e-9)


def container_bytes(container, subtype, n):
    """A valid RF64 or WAVE_FORMAT_EXTENSIBLE file written by libsndfile."""
    buf = io.BytesIO()
    v = np.linspace(-0.5, 0.5, n)
    x = np.stack([v, 0.5 * v], axis=1)
    soundfile.write(buf, x, 8000, format=container, subtype=subtype)
    return buf.getvalue()


containers = st.tuples(
    st.sampled_from(["RF64", "WAVEX"]), st.sampled_from(["PCM_16", "PCM_24", "FLOAT"]), st.integers(1, 40)
)


@FUZZ
@given(containers, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), st.floats(0, 1))
def test_rf64_and_extensible_mutations_only_raise_speechgen_error(spec, flips, where):
    content = bytearray(container_bytes(*spec))
    for pos, value in flips:
        content[pos % len(content)] = value
    check_read(bytes(content[: max(1, int(where * len(content) * 1.2))]))  # cut short about 1 time in 6


@FUZZ
@given(containers)
def test_rf64_and_extensible_read_back(spec):
    container, subtype, n = spec
    samples = check_read(container_bytes(container, subtype, n))
    atol = 1e-7 if subtype == "FLOAT" else 1 / 2**15
    np.testing.assert_allclose(samples, 0.75 * np.linspace(-0.5, 0.5, n), atol=atol)
