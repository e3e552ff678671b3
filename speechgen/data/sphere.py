"""NIST SPHERE header checks (TIMIT's and other LDC corpora's ``.WAV``).

libsndfile (through ``soundfile``) decodes SPHERE files; this module only reads the
header fields that libsndfile ignores or misreads, so a bad file is refused with a
message instead of being read as something else. A SPHERE file is an ASCII header and
then the samples::

    NIST_1A
       1024
    sample_rate -i 16000
    sample_count -i 47738
    sample_byte_format -s2 01
    end_head
    <padding up to 1024 bytes> <samples>

Header lines are ``key -type value`` with type ``-i`` (integer), ``-r`` (real) or
``-sN`` (a string); lines starting with ``;`` are comments.

Why this parser stays beside libsndfile 1.2 (each measured on hand-made files):

* libsndfile ignores ``sample_count``: it takes the length from the file size, so a
  file cut short reads as fewer samples without an error (7 declared, 4 read) and
  bytes after the samples read as extra samples (7 declared, 9 read).
* It reads the size on line 2 with ``sscanf("%d")``: a size ``1O24`` becomes an
  offset of 1 and the header is read as 518 samples of noise.
* It reads files without ``end_head``, ``sample_count`` or ``sample_rate`` lines; a
  missing or real (``-r``) rate fails as "SF_INFO struct incomplete", a missing
  ``channel_count`` as "Unspecified internal error", a ``shorten`` file as
  "unimplemented format" and a 4-byte ``0123`` one as "unsupported compression
  format", none naming the field.

Supported (decoded by libsndfile): linear PCM of 1 or 2 bytes per sample, either byte
order (``01``/``10``), any number of interleaved channels. Refused, with a hint to
convert: compressed codings (``shorten``, ``wavpack``, ``shortpack``), companded ones
(mu-law, A-law), and whatever libsndfile cannot open (4-byte samples, for example).
``sph2pipe -f wav`` turns all of them into 16-bit PCM WAV.
"""

from ..errors import SpeechgenError

MAGIC = b"NIST_1A\n"
CONVERT = "convert it to 16-bit PCM WAV first, e.g. with `sph2pipe -f wav IN OUT`"
_COMPRESSED = ("shorten", "wavpack", "shortpack")
_COMPANDED = ("ulaw", "mu-law", "mulaw", "alaw", "a-law")
_BYTE_FORMATS = ("", "0", "1", "01", "10")  # what libsndfile decodes ("" and 1 byte: no order)


def check_header(path, f, size):
    """Read and check a SPHERE header; return the declared ``sample_count``.

    Args:
        path: the file, for messages.
        f: the file opened in binary mode (any position).
        size: the file's size in bytes.
    Returns:
        The number of samples (frames, per channel) the header declares, >= 1.
    Raises:
        SpeechgenError: a bad or cut-short header, a missing or malformed
        ``sample_count``/``sample_rate``, or a compressed or companded coding.
    """
    f.seek(0)
    header_size = _header_size(path, f.read(256), size)
    f.seek(0)
    fields = _parse_fields(path, f.read(header_size))
    coding = str(fields.get("sample_coding", "pcm")).lower()
    byte_format = str(fields.get("sample_byte_format", "")).lower()
    if any(c in coding + byte_format for c in _COMPRESSED):
        raise SpeechgenError(
            f"{path}: compressed SPHERE ({coding if coding != 'pcm' else byte_format}) is not "
            "supported; decompress it first with `sph2pipe -f wav IN OUT`"
        )
    if any(c in coding for c in _COMPANDED):
        raise SpeechgenError(f"{path}: companded SPHERE ({coding}) is not supported; {CONVERT}")
    if not coding.startswith("pcm"):
        raise SpeechgenError(f"{path}: unknown SPHERE sample_coding {coding!r}; {CONVERT}")
    if byte_format not in _BYTE_FORMATS:
        # libsndfile answers these with "unsupported compression format".
        raise SpeechgenError(
            f"{path}: SPHERE sample_byte_format {byte_format!r} is not supported (16-bit 01 or "
            f"10, or 8-bit samples); {CONVERT}"
        )
    rate = fields.get("sample_rate")
    if rate is None:
        raise SpeechgenError(f"{path}: SPHERE header has no sample_rate")
    if not isinstance(rate, int) or rate <= 0:
        # libsndfile reads only `-i` rates; some writers store `-r 16000.000000`.
        raise SpeechgenError(
            f"{path}: SPHERE sample_rate {rate!r} is not a positive integer (-i) number of Hz; "
            f"{CONVERT}"
        )
    channels = fields.get("channel_count")
    if channels is None:
        # libsndfile assumes no default ("Unspecified internal error").
        raise SpeechgenError(
            f"{path}: SPHERE header has no channel_count; add a line `channel_count -i 1` "
            f"to its header, or {CONVERT}"
        )
    if not isinstance(channels, int) or channels <= 0:
        raise SpeechgenError(f"{path}: SPHERE channel_count {channels!r} is not a positive integer")
    count = fields.get("sample_count")
    if count is None:
        raise SpeechgenError(f"{path}: SPHERE header has no sample_count")
    if not isinstance(count, int):
        raise SpeechgenError(f"{path}: SPHERE field sample_count = {count!r} is not an integer")
    if count <= 0:
        raise SpeechgenError(f"{path}: SPHERE file declares no samples; nothing to read")
    return count


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
            f"{path}: SPHERE header size {text.decode('ascii', 'replace')!r:.20} is not a number"
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
        raise SpeechgenError(f"{path}: SPHERE header has a non-ASCII byte at offset {err.start}") from None
    fields = {}
    # Lines 1 and 2 are the magic and the size, already checked.
    for number, line in enumerate(text.split("\n")[2:], start=3):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith(";"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            raise SpeechgenError(
                f"{path}: SPHERE header line {number}: expected 'key -type value', got {line.strip()!r}"
            )
        key, kind, value = parts
        if kind == "-i":
            fields[key] = _number(path, key, value, int)
        elif kind == "-r":
            fields[key] = _number(path, key, value, float)
        elif kind.startswith("-s") and kind[2:].isdigit():
            fields[key] = value.strip()  # -sN strings may hold spaces
        else:
            raise SpeechgenError(
                f"{path}: SPHERE header line {number}: unknown field type {kind!r} (expected -i, -r or -sN)"
            )
    return fields


def _number(path, key, value, kind):
    try:
        return kind(value.strip())
    except ValueError:
        name = "an integer" if kind is int else "a number"
        raise SpeechgenError(f"{path}: SPHERE field {key} = {value.strip()!r} is not {name}") from None
