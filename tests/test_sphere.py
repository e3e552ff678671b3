"""NIST SPHERE reader: files built by hand, byte by byte, and every way they can be bad."""

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechgen.errors import SpeechgenError
from speechgen.data.sphere import is_sphere, read_sphere, write_sphere

SAMPLES = [0, 1, -1, 32767, -32768, 1234, -4321]


def header(*fields, size=1024, magic=b"NIST_1A\n"):
    """A SPHERE header from literal field lines, padded with spaces to ``size`` bytes."""
    text = magic + b"%7d\n" % size + b"".join(f + b"\n" for f in fields) + b"end_head\n"
    return text + b" " * (size - len(text))


MONO_LE = (
    b"sample_count -i 7",
    b"sample_rate -i 16000",
    b"channel_count -i 1",
    b"sample_n_bytes -i 2",
    b"sample_byte_format -s2 01",
    b"sample_coding -s3 pcm",
)


def write(tmp_path, content, name="a.WAV"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def with_field(key, line):
    """MONO_LE with the field ``key`` replaced by ``line`` (or dropped if None)."""
    return tuple(f for f in MONO_LE if not f.startswith(key)) + ((line,) if line else ())


def test_reads_little_endian_mono_exactly(tmp_path):
    path = write(tmp_path, header(*MONO_LE) + struct.pack("<7h", *SAMPLES))
    rate, data = read_sphere(path)
    assert rate == 16000 and isinstance(rate, int)
    assert isinstance(data, np.memmap)
    assert data.dtype == np.dtype("<i2") and data.shape == (7,)
    assert data.tolist() == SAMPLES
    assert not data.flags.writeable
    assert is_sphere(path)


def test_reads_big_endian(tmp_path):
    fields = with_field(b"sample_byte_format", b"sample_byte_format -s2 10")
    path = write(tmp_path, header(*fields) + struct.pack(">7h", *SAMPLES))
    _, data = read_sphere(path)
    assert data.dtype == np.dtype(">i2")
    assert data.tolist() == SAMPLES


def test_reads_interleaved_stereo(tmp_path):
    fields = (
        b"sample_count -i 3",
        b"sample_rate -i 8000",
        b"channel_count -i 2",
        b"sample_n_bytes -i 2",
        b"sample_byte_format -s2 01",
    )
    path = write(tmp_path, header(*fields) + struct.pack("<6h", 1, -1, 2, -2, 3, -3))
    rate, data = read_sphere(path)
    assert rate == 8000
    assert data.shape == (3, 2)
    assert data.tolist() == [[1, -1], [2, -2], [3, -3]]


def test_comments_real_rate_and_trailing_bytes_are_fine(tmp_path):
    fields = with_field(b"sample_rate", b"sample_rate -r 16000.0") + (b"; a comment",)
    path = write(tmp_path, header(*fields) + struct.pack("<7h", *SAMPLES) + b"junk")
    rate, data = read_sphere(path)
    assert rate == 16000
    assert data.tolist() == SAMPLES


def test_detects_by_content_not_name(tmp_path):
    sph = write(tmp_path, header(*MONO_LE) + struct.pack("<7h", *SAMPLES), "x.wav")
    riff = write(tmp_path, b"RIFF\0\0\0\0WAVEfmt ", "y.sph")
    assert is_sphere(sph)
    assert not is_sphere(riff)
    assert not is_sphere(tmp_path / "missing.sph")


@pytest.mark.parametrize("shape", [(5,), (4, 2)])
def test_write_then_read_round_trip(tmp_path, shape):
    data = np.arange(-np.prod(shape), np.prod(shape), 2, dtype=np.int16).reshape(shape)
    path = tmp_path / "out.sph"
    write_sphere(path, 22050, data)
    assert path.read_bytes()[:8] == b"NIST_1A\n"
    assert len(path.read_bytes()) == 1024 + data.nbytes
    rate, back = read_sphere(path)
    assert rate == 22050
    np.testing.assert_array_equal(back, data)


def test_write_rejects_non_int16(tmp_path):
    with pytest.raises(SpeechgenError, match="int16"):
        write_sphere(tmp_path / "x.sph", 16000, np.zeros(3, dtype=np.float32))


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
    "missing sample_rate": (
        header(*with_field(b"sample_rate", None)) + bytes(14),
        "no sample_rate",
    ),
    "missing sample_count": (
        header(*with_field(b"sample_count", None)) + bytes(14),
        "no sample_count",
    ),
    "non-numeric value": (
        header(*with_field(b"sample_count", b"sample_count -i seven")) + bytes(14),
        "not an integer",
    ),
    "data shorter than declared": (
        header(*MONO_LE) + bytes(9),
        "holds 4 samples but its header declares 7",
    ),
    "zero samples": (header(*with_field(b"sample_count", b"sample_count -i 0")), "no samples"),
    "compressed": (
        header(*with_field(b"sample_coding", b"sample_coding -s26 pcm,embedded-shorten-v2.00"))
        + bytes(14),
        "compressed SPHERE .*sph2pipe",
    ),
    "mu-law": (
        header(*with_field(b"sample_coding", b"sample_coding -s4 ulaw")) + bytes(14),
        "not supported",
    ),
    "bad byte format": (
        header(*with_field(b"sample_byte_format", b"sample_byte_format -s2 11")) + bytes(14),
        "sample_byte_format",
    ),
    "not sphere at all": (b"RIFF" + bytes(100), "not a NIST SPHERE"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_file_gives_one_line_error_naming_it(tmp_path, case):
    content, message = BAD[case]
    path = write(tmp_path, content, "bad.WAV")
    with pytest.raises(SpeechgenError, match=message) as err:
        read_sphere(path)
    text = str(err.value)
    assert str(path) in text and "\n" not in text


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpeechgenError, match="no such file"):
        read_sphere(tmp_path / "nope.WAV")
    with pytest.raises(SpeechgenError, match="is a directory"):
        read_sphere(tmp_path)


def _read_bytes_as_sphere(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.WAV"
        path.write_bytes(content)
        try:
            rate, data = read_sphere(path)
        except SpeechgenError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            return
        assert rate > 0 and len(data) > 0
        np.asarray(data[-1])  # the last sample is really inside the file
        del data


VALID = header(*MONO_LE) + struct.pack("<7h", *SAMPLES)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_speechgen_error(content):
    _read_bytes_as_sphere(content)


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
        # Mostly hit the header text, where the parser lives.
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
