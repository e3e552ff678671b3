"""NIST SPHERE audio (TIMIT's and other LDC corpora's ``.WAV``), read without copying.

A SPHERE file is an ASCII header followed by raw samples::

    NIST_1A
       1024
    sample_rate -i 16000
    sample_count -i 47738
    sample_byte_format -s2 01
    end_head
    <padding up to 1024 bytes> <samples>

Header lines are ``key -type value`` with type ``-i`` (integer), ``-r`` (real) or
``-sN`` (a string of N characters); lines starting with ``;`` are comments.

Supported: linear PCM with 1, 2 or 4 bytes per sample (``int8``, ``int16``, ``int32``),
little endian (``sample_byte_format`` ``01``/``0123``) or big endian (``10``/``3210``),
any number of interleaved channels. Not supported, each rejected with a message saying
how to convert the file: compressed codings (``shorten``, ``wavpack``, ``shortpack``)
and companded ones (mu-law, A-law). Decoding mu-law would need a copy of the whole file in
memory; ``sph2pipe -f wav`` turns all of them into 16-bit PCM WAV, which speechgen reads.
"""

import os
from pathlib import Path

import numpy as np

from ..errors import SpeechgenError
from ..files import atomic_path

MAGIC = b"NIST_1A\n"
HEADER_SIZE = 1024  # what write_sphere writes; every LDC corpus uses it too

# sample_byte_format -> byte order, per sample width.
_ORDERS = {
    1: {"0": "|", "1": "|"},
    2: {"01": "<", "10": ">"},
    4: {"0123": "<", "3210": ">"},
}
_CONVERT = "convert it to 16-bit PCM WAV first, e.g. with `sph2pipe -f wav IN OUT`"


def is_sphere(path):
    """Whether ``path`` starts with the SPHERE magic ``NIST_1A\\n`` (whatever its name).

    An unreadable or missing file is not SPHERE: returns False rather than raising,
    so callers can go on to their next format check and report the problem there.
    """
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_sphere(path):
    """Open a SPHERE file as a read-only memory map.

    Args:
        path: the file.
    Returns:
        ``(sample_rate, data)``: the rate in Hz (int) and an ``np.memmap`` of shape
        ``(sample_count,)`` for mono or ``(sample_count, channels)``, dtype ``int16``
        (or ``int8``/``int32`` for 1/4-byte files) in the file's byte order. Bytes
        after the declared samples are ignored.
    Raises:
        SpeechgenError: missing or unreadable file, bad or truncated header, a
        missing or malformed field, a compressed or companded coding, no samples, or
        fewer sample bytes than the header declares.
    """
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            start = f.read(256)  # magic + size line, with room for padding
            header_size = _header_size(path, start, size)
            f.seek(0)
            header = f.read(header_size)
    except FileNotFoundError:
        raise SpeechgenError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpeechgenError(f"{path}: is a directory, expected a SPHERE file") from None
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot be read ({err.strerror or err})") from None

    fields = _parse_fields(path, header)
    rate = _sample_rate(path, fields)
    count = _positive_int(path, fields, "sample_count")
    channels = _positive_int(path, fields, "channel_count", default=1)
    dtype = _dtype(path, fields)

    frame = channels * dtype.itemsize
    available = (size - header_size) // frame
    if available < count:
        raise SpeechgenError(
            f"{path}: SPHERE data truncated: the file holds {available} samples but "
            f"its header declares {count} (sample_count); the file was cut short"
        )
    shape = (count,) if channels == 1 else (count, channels)
    try:
        data = np.memmap(path, dtype=dtype, mode="r", offset=header_size, shape=shape)
    except (OSError, ValueError) as err:
        raise SpeechgenError(f"{path}: cannot be memory-mapped ({err})") from None
    return rate, data


def write_sphere(path, rate, data):
    """Write int16 samples as a little-endian PCM SPHERE file with a 1024-byte header.

    Args:
        path: output file, written atomically.
        rate: sample rate in Hz (positive int).
        data: int16 array of shape ``(n,)`` (mono) or ``(n, channels)``, ``n >= 1``.
    Raises:
        SpeechgenError: data not int16, empty or of the wrong rank; bad rate; or the
        file cannot be written.
    """
    data = np.asarray(data)
    if data.dtype != np.int16:
        raise SpeechgenError(f"{path}: SPHERE writer takes int16 samples, got {data.dtype}")
    if data.ndim not in (1, 2) or data.shape[0] == 0 or data.size == 0:
        raise SpeechgenError(
            f"{path}: nothing to write: samples must have shape (n,) or (n, channels) "
            f"with n >= 1, got {data.shape}"
        )
    if int(rate) != rate or rate <= 0:
        raise SpeechgenError(f"{path}: sample rate {rate} must be a positive whole number")
    channels = 1 if data.ndim == 1 else data.shape[1]
    lines = [
        "NIST_1A",
        f"{HEADER_SIZE:7d}",
        f"channel_count -i {channels}",
        f"sample_count -i {data.shape[0]}",
        f"sample_rate -i {int(rate)}",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_coding -s3 pcm",
        "sample_sig_bits -i 16",
        "end_head",
    ]
    header = ("\n".join(lines) + "\n").encode("ascii")
    header += b" " * (HEADER_SIZE - len(header))
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(header)
                f.write(data.astype("<i2").tobytes())
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot write ({err.strerror or err})") from None


def _header_size(path, start, size):
    """The header length in bytes from line 2, checked against the file size."""
    if not start.startswith(MAGIC):
        raise SpeechgenError(f"{path}: not a NIST SPHERE file (does not start with NIST_1A)")
    line = start[len(MAGIC) :].split(b"\n", 1)
    if len(line) < 2:
        raise SpeechgenError(f"{path}: SPHERE header truncated before its size line")
    text = line[0].strip()
    if not text.isdigit():
        raise SpeechgenError(
            f"{path}: SPHERE header size {text.decode('ascii', 'replace')!r:.20} "
            "is not a number"
        )
    header_size = int(text)
    if header_size > size:
        raise SpeechgenError(
            f"{path}: SPHERE header size {header_size} is beyond the end of the file "
            f"({size} bytes); the file is truncated"
        )
    return header_size


def _parse_fields(path, header):
    """``{key: value}`` from the header lines up to ``end_head`` (int, float or str)."""
    end = header.find(b"end_head")
    if end < 0:
        raise SpeechgenError(
            f"{path}: SPHERE header truncated: no end_head within its {len(header)} bytes"
        )
    try:
        text = header[:end].decode("ascii")
    except UnicodeDecodeError as err:
        raise SpeechgenError(
            f"{path}: SPHERE header has a non-ASCII byte at offset {err.start}"
        ) from None
    fields = {}
    # Lines 1 and 2 are the magic and the size, already checked.
    for number, line in enumerate(text.split("\n")[2:], start=3):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith(";"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            raise SpeechgenError(
                f"{path}: SPHERE header line {number}: expected 'key -type value', "
                f"got {line.strip()!r}"
            )
        key, kind, value = parts
        if kind == "-i":
            fields[key] = _number(path, key, value, int)
        elif kind == "-r":
            fields[key] = _number(path, key, value, float)
        elif kind.startswith("-s") and kind[2:].isdigit():
            # -sN strings may hold spaces: split(None, 2) kept the rest of the line.
            fields[key] = value.strip()
        else:
            raise SpeechgenError(
                f"{path}: SPHERE header line {number}: unknown field type {kind!r} "
                "(expected -i, -r or -sN)"
            )
    return fields


def _number(path, key, value, kind):
    try:
        number = kind(value.strip())
    except ValueError:
        name = "an integer" if kind is int else "a number"
        raise SpeechgenError(
            f"{path}: SPHERE field {key} = {value.strip()!r} is not {name}"
        ) from None
    if kind is float and not np.isfinite(number):
        raise SpeechgenError(f"{path}: SPHERE field {key} = {value.strip()!r} is not finite")
    return number


def _positive_int(path, fields, key, default=None):
    value = fields.get(key, default)
    if value is None:
        raise SpeechgenError(f"{path}: SPHERE header has no {key}")
    if not isinstance(value, int):
        raise SpeechgenError(f"{path}: SPHERE field {key} = {value!r} is not an integer")
    if value <= 0:
        what = "no samples" if key == "sample_count" else f"{key} {value}"
        raise SpeechgenError(f"{path}: SPHERE file declares {what}; nothing to read")
    return value


def _sample_rate(path, fields):
    rate = fields.get("sample_rate")
    if rate is None:
        raise SpeechgenError(f"{path}: SPHERE header has no sample_rate")
    # Some writers store the rate as -r 16000.000000: accept whole numbers only.
    if isinstance(rate, str) or rate <= 0 or rate != int(rate):
        raise SpeechgenError(
            f"{path}: SPHERE sample_rate {rate!r} is not a positive whole number of Hz"
        )
    return int(rate)


def _dtype(path, fields):
    """The numpy dtype of one sample, from sample_coding, _n_bytes and _byte_format."""
    coding = str(fields.get("sample_coding", "pcm")).lower()
    byte_format = str(fields.get("sample_byte_format", "")).lower()
    if any(c in coding + byte_format for c in ("shorten", "wavpack", "shortpack")):
        raise SpeechgenError(
            f"{path}: compressed SPHERE ({coding or byte_format}) is not supported; "
            f"decompress it first with `sph2pipe -f wav IN OUT`"
        )
    if any(c in coding for c in ("ulaw", "mu-law", "mulaw", "alaw", "a-law")):
        raise SpeechgenError(f"{path}: companded SPHERE ({coding}) is not supported; {_CONVERT}")
    if not coding.startswith("pcm"):
        raise SpeechgenError(f"{path}: unknown SPHERE sample_coding {coding!r}; {_CONVERT}")
    n_bytes = fields.get("sample_n_bytes", 2)
    if n_bytes not in _ORDERS or isinstance(n_bytes, float):
        raise SpeechgenError(
            f"{path}: SPHERE sample_n_bytes {n_bytes!r} is not supported (1, 2 or 4)"
        )
    if n_bytes == 1 and not byte_format:
        byte_format = "1"  # one byte has no order; the field is often left out
    order = _ORDERS[n_bytes].get(byte_format)
    if order is None:
        known = " or ".join(_ORDERS[n_bytes])
        raise SpeechgenError(
            f"{path}: SPHERE sample_byte_format {byte_format or '(missing)'!r} does not "
            f"fit {n_bytes}-byte samples (expected {known})"
        )
    return np.dtype(f"{order}i{n_bytes}")
