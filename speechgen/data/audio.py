"""Reading and writing audio files.

Reading returns an :class:`Audio`: a lazy view of one file that serves float32 mono
samples in [-1, 1] on demand, reading just the frames asked for (seek + read of one
block), so a long recording is never loaded whole. Decoding is libsndfile's (through
``soundfile``): RIFF, RIFX, RF64 and WAVE_FORMAT_EXTENSIBLE WAV in 8-bit unsigned,
16/24/32-bit signed PCM and 32/64-bit float, and uncompressed NIST SPHERE (TIMIT's
``.WAV``; its header is checked by :mod:`speechgen.data.sphere`). The format is detected
by content, not by name. Integers are scaled by their full scale (8-bit centred on
128), floats used as they are; several channels are averaged to mono.

What stays hand-written, and why (measured with libsndfile 1.2.2): a walk over the RIFF
chunks up to ``data`` (:func:`_check_riff`). libsndfile reads a WAV whose data chunk is
cut short without an error (a file 7 bytes short: 196 of 200 frames), silently drops a
trailing partial frame (a 201-byte 16-bit data chunk: 100 frames), reads a block align
of 0 as if it were right, and answers a sample rate of 0 with "Internal error: SF_INFO
struct incomplete". The walk compares the declared sizes with the file and names the
problem; everything else is left to libsndfile.

Writing produces 16-bit PCM WAV, atomically.
"""

import struct
from pathlib import Path

import numpy as np
import soundfile

from ..errors import SpeechgenError
from ..files import atomic_path
from .sphere import CONVERT, check_header

# Samples per block when a whole-file pass is needed (statistics, the float check):
# bounds memory to a few MB whatever the file's length.
CHUNK = 1 << 20

# libsndfile subtypes read, and their bytes per sample.
_PCM = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
_RF64_SIZE = 0xFFFFFFFF  # an RF64 chunk size that means "see the ds64 chunk"


class Audio:
    """A mono float32 view of one audio file.

    Args:
        path: the file.
        rate: sample rate in Hz.
        frames: samples per channel served (SPHERE: the declared ``sample_count``,
            even if the file holds bytes after them).
        channels: interleaved channels in the file, averaged by :meth:`read`.
        subtype: libsndfile's sample format (``"PCM_16"``, ``"FLOAT"``, ...).
    Each read opens the file, seeks and reads one block: a corpus of thousands of
    files holds no descriptor between reads.
    """

    def __init__(self, path, rate, frames, channels, subtype):
        self.path = Path(path)
        self.rate = int(rate)
        self.frames = int(frames)
        self.channels = int(channels)
        self.subtype = subtype

    def __len__(self):
        """Number of samples (per channel)."""
        return self.frames

    @property
    def seconds(self):
        return len(self) / self.rate

    def frames_at(self, start=0, stop=None):
        """Samples ``[start, stop)`` of every channel as float32, shape ``(n, channels)``."""
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(start, stop)
        try:
            with soundfile.SoundFile(self.path) as f:
                f.seek(start)
                block = f.read(stop - start, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, OSError) as err:
            raise SpeechgenError(f"{self.path}: cannot be read ({_reason(err)})") from None
        if len(block) < stop - start:
            raise SpeechgenError(f"{self.path}: the file got shorter while being read (changed on disk?)")
        return block

    def read(self, start=0, stop=None):
        """Samples ``[start, stop)`` as float32 mono, shape ``(stop - start,)``."""
        block = self.frames_at(start, stop)
        return block[:, 0] if self.channels == 1 else block.mean(axis=1, dtype=np.float32)

    def chunks(self, start=0, stop=None):
        """Yield consecutive float32 mono blocks of at most ``CHUNK`` covering ``[start, stop)``."""
        stop = len(self) if stop is None else stop
        for lo in range(start, stop, CHUNK):
            yield self.read(lo, min(lo + CHUNK, stop))


def read_audio(path):
    """Open an audio file (RIFF WAV or NIST SPHERE, detected by content).

    Returns:
        :class:`Audio`.
    Raises:
        SpeechgenError: missing, unreadable, not audio, corrupt or cut short, empty,
        compressed, or float samples that are NaN/Inf or beyond [-1, 1].
    """
    path = Path(path)
    if not path.exists():
        raise SpeechgenError(f"{path}: no such file")
    if path.is_dir():
        raise SpeechgenError(f"{path}: is a directory, expected an audio file")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            size = path.stat().st_size
            if head.startswith(b"NIST_1A\n"):
                kind, declared = "SPHERE", check_header(path, f, size)
            elif head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
                kind, declared = "WAV", _check_riff(path, f, size, head)
            else:
                raise SpeechgenError(
                    f"{path}: not a WAV or NIST SPHERE file (convert it to WAV, e.g. with sox)"
                )
    except PermissionError:
        raise SpeechgenError(f"{path}: permission denied") from None
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as err:
        if kind == "SPHERE":
            raise SpeechgenError(
                f"{path}: unsupported or corrupt SPHERE file ({_reason(err)}); {CONVERT}"
            ) from None
        raise SpeechgenError(f"{path}: corrupt or truncated WAV file ({_reason(err)})") from None
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot be read ({err.strerror or err})") from None
    if info.subtype not in _PCM:
        what = f"{info.subtype} ({info.subtype_info})"
        hint = CONVERT if kind == "SPHERE" else "convert it to 16-bit PCM WAV first, e.g. `sox IN -b 16 OUT`"
        raise SpeechgenError(f"{path}: {kind} sample format {what} is not supported; {hint}")
    frames = info.frames
    if kind == "SPHERE":
        # libsndfile's length comes from the file size; the header's sample_count rules.
        if frames < declared:
            raise SpeechgenError(
                f"{path}: SPHERE data truncated: the file holds {frames} samples but "
                f"its header declares {declared} (sample_count); the file was cut short"
            )
        frames = declared
    if frames <= 0:
        raise SpeechgenError(f"{path}: holds no samples")
    audio = Audio(path, info.samplerate, frames, info.channels, info.subtype)
    if info.subtype in ("FLOAT", "DOUBLE"):
        _check_float(audio)
    return audio


def _reason(err):
    """libsndfile's own words for ``err``, without soundfile's "Error opening ..." prefix."""
    text = getattr(err, "error_string", None) or getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split()).rstrip(".")[:120] or type(err).__name__


def _check_riff(path, f, size, head):
    """Walk the RIFF chunks up to ``data``; return its declared size in bytes.

    Raises SpeechgenError for a cut-short header, a missing or short ``fmt`` chunk, a
    zero channel count, rate, bit depth or block align, ``data`` before ``fmt``, a data
    chunk longer than the file (cut short) or not a whole number of frames. RF64's
    sizes are read from its ``ds64`` chunk.
    """
    order = ">" if head[:4] == b"RIFX" else "<"
    pos, fmt, ds64_data = 12, None, None
    while True:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            missing = "fmt" if fmt is None else "data"
            raise SpeechgenError(f"{path}: corrupt WAV file: no {missing} chunk (cut short?)")
        chunk, length = header[:4], struct.unpack(order + "I", header[4:])[0]
        available = size - pos - 8
        if chunk == b"ds64" and head[:4] == b"RF64" and length >= 16 and available >= 16:
            ds64_data = struct.unpack("<Q", f.read(16)[8:])[0]
        elif chunk == b"fmt ":
            if available < min(length, 16):
                raise SpeechgenError(f"{path}: corrupt or truncated WAV file: the header is cut short")
            if length < 16:
                raise SpeechgenError(f"{path}: corrupt WAV file: fmt chunk too short ({length} bytes)")
            tag, channels, rate, _, align, bits = struct.unpack(order + "HHIIHH", f.read(16))
            checks = [("channels", channels), ("sample rate", rate), ("block align", align)]
            if tag in (1, 3, 0xFFFE):  # PCM, float, extensible; compressed tags may say 0 bits
                checks.insert(2, ("bits per sample", bits))
            for name, value in checks:
                if value == 0:
                    raise SpeechgenError(f"{path}: corrupt WAV header: {name} is 0")
            fmt = (channels, bits, align)
        elif chunk == b"data":
            if fmt is None:
                raise SpeechgenError(f"{path}: corrupt WAV file: data chunk before the fmt chunk")
            if length == _RF64_SIZE and ds64_data is not None:
                length = ds64_data
            channels, bits, align = fmt
            if length > available:
                raise SpeechgenError(
                    f"{path}: WAV data truncated: the data chunk declares {length} bytes but the "
                    f"file holds {available}; the file was cut short (re-export it, or "
                    "`sox --ignore-length IN OUT` to keep what is there)"
                )
            if length % align:
                raise SpeechgenError(
                    f"{path}: corrupt WAV file: the data chunk holds {length} bytes, not a whole "
                    f"number of {align}-byte frames ({bits}-bit, {channels} channel"
                    f"{'s' if channels != 1 else ''}); the file is damaged, re-export it"
                )
            return length
        pos += 8 + length + (length & 1)


def _check_float(audio):
    """Refuse float samples that are NaN/Inf or outside [-1, 1], scanning in blocks.

    Float WAV is full scale at +-1; louder values would be used as they are and break
    the meaning of every level (normalisation, clipping on output), so they are an
    error with the fix, not a silent rescale. Each channel is checked before mixing.
    """
    for lo in range(0, len(audio), CHUNK):
        block = audio.frames_at(lo, lo + CHUNK)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad = lo + int(np.argmin(finite))
            raise SpeechgenError(
                f"{audio.path}: float sample {bad} is NaN or infinite; clean the file first"
            )
        inside = (np.abs(block) <= 1.0).all(axis=1)
        if not inside.all():
            bad = lo + int(np.argmin(inside))
            value = float(block[bad - lo][np.argmax(np.abs(block[bad - lo]))])
            raise SpeechgenError(
                f"{audio.path}: float sample {bad} is {value:.6g}, outside the float WAV range "
                "[-1, 1]; rescale the file to [-1, 1] first (e.g. `sox IN -b 16 OUT norm`)"
            )


def write_wav(path, rate, samples):
    """Write float samples in [-1, 1] as 16-bit PCM mono WAV, atomically.

    Args:
        path: output file.
        rate: sample rate in Hz.
        samples: shape ``(n,)``; values outside [-1, 1] are clipped.
    """
    from scipy.io import wavfile

    pcm = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    pcm = np.round(pcm * 32767.0).astype(np.int16)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, int(rate), pcm)
