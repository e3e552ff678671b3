"""NIST SPHERE through read_audio: files built by hand, byte by byte, and every way they can be bad.

libsndfile decodes the samples; speechgen.data.sphere checks the header fields that
libsndfile ignores (sample_count, the size line, end_head, the coding). Files are
written byte by byte here (or by tests/fixtures.py), not by libsndfile, so reader
and writer are independent.
"""

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fixtures import write_sphere16
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechgen.data.audio import read_audio
from speechgen.errors import SpeechgenError

SAMPLES = [0, 1, -1, 32767, -32768, 1234, -4321]

MONO_LE = (
    b"sample_count -i 7",
    b"sample_rate -i 16000",
    b"channel_count -i 1",
    b"sample_n_bytes -i 2",
    b"sample_byte_format -s2 01",
    b"sample_coding -s3 pcm",
)


def header(*fields, size=1024, magic=b"NIST_1A\n"):
    """A SPHERE header from literal field lines, padded with spaces to ``size`` bytes."""
    text = magic + b"%7d\n" % size + b"".join(f + b"\n" for f in fields) + b"end_head\n"
    return text + b" " * (size - len(text))


def write(tmp_path, content, name="a.WAV"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def with_field(key, line):
    """MONO_LE with the field ``key`` replaced by ``line`` (or dropped if None)."""
    return tuple(f for f in MONO_LE if not f.startswith(key)) + ((line,) if line else ())


def pcm16(audio, start=0, stop=None):
    """The int16 values behind ``audio.read()`` (exact: int16 / 32768 is exact in float32)."""
    return np.round(audio.read(start, stop).astype(np.float64) * 32768).astype(np.int64).tolist()


def test_reads_little_endian_mono_exactly(tmp_path):
    path = write(tmp_path, header(*MONO_LE) + struct.pack("<7h", *SAMPLES))
    audio = read_audio(path)
    assert audio.rate == 16000 and isinstance(audio.rate, int)
    assert len(audio) == 7 and audio.channels == 1 and audio.subtype == "PCM_16"
    assert audio.read().dtype == np.float32
    assert pcm16(audio) == SAMPLES
    assert pcm16(audio, 2, 5) == SAMPLES[2:5]


def test_reads_big_endian(tmp_path):
    fields = with_field(b"sample_byte_format", b"sample_byte_format -s2 10")
    path = write(tmp_path, header(*fields) + struct.pack(">7h", *SAMPLES))
    assert pcm16(read_audio(path)) == SAMPLES


def test_reads_8_bit(tmp_path):
    fields = with_field(b"sample_n_bytes", b"sample_n_bytes -i 1")
    fields = tuple(f for f in fields if not f.startswith(b"sample_byte_format"))
    path = write(tmp_path, header(*fields) + struct.pack("<7b", 0, 1, -1, 127, -128, 64, -64))
    np.testing.assert_array_equal(read_audio(path).read(), np.array([0, 1, -1, 127, -128, 64, -64]) / 128)


def test_interleaved_stereo_is_averaged(tmp_path):
    fields = (
        b"sample_count -i 3",
        b"sample_rate -i 8000",
        b"channel_count -i 2",
        b"sample_n_bytes -i 2",
        b"sample_byte_format -s2 01",
    )
    path = write(tmp_path, header(*fields) + struct.pack("<6h", 1000, -1000, 2000, 0, 3000, 1000))
    audio = read_audio(path)
    assert audio.rate == 8000 and audio.channels == 2 and len(audio) == 3
    np.testing.assert_allclose(audio.read(), np.array([0, 1000, 2000]) / 32768, atol=1e-9)


def test_comments_and_trailing_bytes_are_fine(tmp_path):
    # libsndfile would serve the 4 trailing bytes as 2 more samples: sample_count rules.
    fields = MONO_LE + (b"; a comment",)
    path = write(tmp_path, header(*fields) + struct.pack("<7h", *SAMPLES) + b"junk")
    audio = read_audio(path)
    assert len(audio) == 7 and pcm16(audio) == SAMPLES


def test_detected_by_content_not_name(tmp_path):
    sph = write(tmp_path, header(*MONO_LE) + struct.pack("<7h", *SAMPLES), "x.wav")
    assert pcm16(read_audio(sph)) == SAMPLES


@pytest.mark.parametrize("shape", [(5,), (4, 2)])
def test_fixture_writer_round_trip(tmp_path, shape):
    data = np.arange(-np.prod(shape), np.prod(shape), 2).reshape(shape) * 100
    path = write_sphere16(tmp_path / "out.sph", 22050, data / 32767)
    assert path.read_bytes()[:8] == b"NIST_1A\n" and len(path.read_bytes()) == 1024 + 2 * data.size
    audio = read_audio(path)
    assert audio.rate == 22050 and len(audio) == shape[0]
    want = data.reshape(shape[0], -1).mean(axis=1) / 32768
    np.testing.assert_allclose(audio.read(), want, atol=1e-9)


def test_libsndfile_written_sphere_reads(tmp_path):
    x = (np.arange(-300, 300, dtype=np.int16) * 50).reshape(-1, 2)
    path = tmp_path / "sf.sph"
    soundfile.write(path, x, 16000, format="NIST", subtype="PCM_16")
    audio = read_audio(path)
    assert audio.rate == 16000 and len(audio) == 300 and audio.channels == 2
    np.testing.assert_allclose(audio.read(), x.mean(axis=1) / 32768, atol=1e-9)


CONVERT = "sph2pipe -f wav"
BAD = {
    "file cut inside the header": (
        b"NIST_1A\n   1024\nsample_rate -i 16000\n",
        "beyond the end of the file .*truncated",
    ),
    "no end_head within the header": (
        header(*MONO_LE).replace(b"end_head", b"end_hexd") + bytes(14),
        "no end_head",
    ),
    "header size not a number": (
        header(*MONO_LE).replace(b"   1024", b"   1O24") + bytes(14),
        "not a number",
    ),
    "header size beyond the file": (
        header(*MONO_LE, size=1024).replace(b"   1024", b"   4096") + bytes(14),
        "beyond the end",
    ),
    "missing sample_rate": (header(*with_field(b"sample_rate", None)) + bytes(14), "no sample_rate"),
    "real sample_rate (libsndfile reads -i only)": (
        header(*with_field(b"sample_rate", b"sample_rate -r 16000.0")) + bytes(14),
        "sample_rate 16000.0 is not a positive integer .*sph2pipe",
    ),
    "missing sample_count": (header(*with_field(b"sample_count", None)) + bytes(14), "no sample_count"),
    "non-numeric value": (
        header(*with_field(b"sample_count", b"sample_count -i seven")) + bytes(14),
        "not an integer",
    ),
    "data shorter than declared": (header(*MONO_LE) + bytes(9), "holds 4 samples but its header declares 7"),
    "zero samples": (header(*with_field(b"sample_count", b"sample_count -i 0")), "no samples"),
    "compressed": (
        header(*with_field(b"sample_coding", b"sample_coding -s26 pcm,embedded-shorten-v2.00")) + bytes(14),
        "compressed SPHERE .*sph2pipe",
    ),
    "mu-law": (header(*with_field(b"sample_coding", b"sample_coding -s4 ulaw")) + bytes(14), "companded SPHERE"),
    "bad byte format": (
        header(*with_field(b"sample_byte_format", b"sample_byte_format -s2 11")) + bytes(14),
        "sample_byte_format '11' is not supported",
    ),
    "4-byte samples (libsndfile reads 1 and 2)": (
        header(*with_field(b"sample_byte_format", b"sample_byte_format -s4 0123"), b"sample_n_bytes -i 4")
        + bytes(28),
        "sample_byte_format '0123' is not supported .*sph2pipe",
    ),
    "zero channels": (
        header(*with_field(b"channel_count", b"channel_count -i 0")) + bytes(14),
        "channel_count 0 is not a positive integer",
    ),
    "no channel_count (libsndfile assumes none)": (
        header(*with_field(b"channel_count", None)) + bytes(14),
        "no channel_count; add a line `channel_count -i 1`",
    ),
    "libsndfile cannot open it (8-bit data declared as 2-byte 01)": (
        header(*with_field(b"sample_n_bytes", b"sample_n_bytes -i 1")) + bytes(14),
        "unsupported or corrupt SPHERE file .*sph2pipe",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_file_gives_one_line_error_naming_it(tmp_path, case):
    content, message = BAD[case]
    path = write(tmp_path, content, "bad.WAV")
    with pytest.raises(SpeechgenError, match=message) as err:
        read_audio(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text


def _read_bytes_as_sphere(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.WAV"
        path.write_bytes(content)
        try:
            audio = read_audio(path)
        except SpeechgenError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            return
        assert audio.rate > 0 and len(audio) > 0
        x = audio.read()
        assert x.shape == (len(audio),) and np.isfinite(x).all() and np.abs(x).max() <= 1.0


VALID = header(*MONO_LE) + struct.pack("<7h", *SAMPLES)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_after_magic_only_raise_speechgen_error(content):
    _read_bytes_as_sphere(b"NIST_1A\n" + content)


@FAST
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(VALID) - 1),
            st.sampled_from(list(b"0123456789 -\n;abcdeirs_#\xff\x00")),
        ),
        min_size=1,
        max_size=8,
    ),
    st.one_of(st.just(None), st.integers(0, len(VALID))),
)
def test_mutated_headers_only_raise_speechgen_error(edits, cut):
    content = bytearray(VALID)
    for offset, byte in edits:
        # Mostly hit the header text, where the parsers live.
        content[offset % 300] = byte
    _read_bytes_as_sphere(bytes(content[:cut]))  # sometimes cut short too


FIELD_VALUE = st.one_of(
    st.integers(-(2**40), 2**40).map(lambda n: b"-i %d" % n),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: b"-r " + repr(x).encode()),
    st.text("0123456789-.,abcdefghijklmnopqrstuvwxyz", max_size=12).map(
        lambda s: b"-s%d %s" % (len(s), s.encode())
    ),
    st.binary(max_size=6),
)
KEYS = ["sample_count", "sample_rate", "channel_count", "sample_n_bytes",
        "sample_byte_format", "sample_coding"]


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), FIELD_VALUE), st.integers(0, 64))
def test_random_field_values_only_raise_speechgen_error(changes, n_data):
    fields = [f for f in MONO_LE if f.split()[0].decode() not in changes]
    fields += [key.encode() + b" " + value for key, value in changes.items()]
    _read_bytes_as_sphere(header(*fields) + bytes(n_data))
