"""Reading and writing audio files.

Reading returns an :class:`Audio`: a lazily read, memory-mapped view of one file that
serves float32 mono samples in [-1, 1] on demand, so a long recording is never copied
into memory whole. RIFF WAV is read with ``scipy.io.wavfile`` (8-bit unsigned, 16/24/32/
64-bit signed, float32/64); NIST SPHERE (TIMIT's ``.WAV``) is detected by content and
read by :mod:`speechgen.sphere`. Several channels are mixed to mono by averaging them.
Writing produces 16-bit PCM WAV.
"""

import struct
import warnings
from pathlib import Path

import numpy as np

from .errors import SpeechgenError
from .files import atomic_path

# How many samples to scan at a time when a whole-file pass is needed (statistics,
# finiteness checks): bounds memory to a few MB whatever the file's length.
CHUNK = 1 << 20


class Audio:
    """A mono float32 view of one audio file.

    Args:
        path: the file, for messages.
        rate: sample rate in Hz.
        raw: the stored samples, shape ``(n,)`` or ``(n, channels)``, usually a
            ``np.memmap`` so nothing is read until asked for.
    Integer samples are scaled by their full-scale value (unsigned 8-bit is centred
    first), so every format maps to [-1, 1); float files are used as they are.
    """

    def __init__(self, path, rate, raw):
        self.path = Path(path)
        self.rate = int(rate)
        self.raw = raw
        self.channels = 1 if raw.ndim == 1 else raw.shape[1]
        kind = raw.dtype.kind
        if kind == "u":
            # 8-bit WAV is unsigned with silence at 128.
            self._offset, self._scale = 128.0, 128.0
        elif kind == "i":
            self._offset, self._scale = 0.0, float(2 ** (8 * raw.dtype.itemsize - 1))
        elif kind == "f":
            self._offset, self._scale = 0.0, 1.0
        else:
            raise SpeechgenError(f"{self.path}: unsupported sample type {raw.dtype}")

    def __len__(self):
        """Number of samples (per channel)."""
        return self.raw.shape[0]

    @property
    def seconds(self):
        return len(self) / self.rate

    def read(self, start=0, stop=None):
        """Samples ``[start, stop)`` as float32 mono, shape ``(stop - start,)``."""
        block = np.asarray(self.raw[start:stop], dtype=np.float32)
        if block.ndim == 2:
            block = block.mean(axis=1, dtype=np.float32)
        if self._offset or self._scale != 1.0:
            block = (block - self._offset) / self._scale
        return block

    def chunks(self, start=0, stop=None):
        """Yield consecutive float32 mono blocks covering ``[start, stop)``."""
        stop = len(self) if stop is None else stop
        for lo in range(start, stop, CHUNK):
            yield self.read(lo, min(lo + CHUNK, stop))


def _read_riff(path):
    from scipy.io import wavfile

    with warnings.catch_warnings():
        # scipy warns about unknown chunks (LIST, cue ...); they are harmless.
        warnings.simplefilter("ignore", wavfile.WavFileWarning)
        try:
            return wavfile.read(path, mmap=True)
        except ValueError as err:
            if "mmap" not in str(err):
                raise
            # 24-bit and other non byte-aligned widths cannot be memory-mapped:
            # scipy returns them left-justified in int32, read into memory.
            return wavfile.read(path, mmap=False)


def read_audio(path):
    """Open an audio file (RIFF WAV or NIST SPHERE, detected by content).

    Returns:
        :class:`Audio`.
    Raises:
        SpeechgenError: missing, unreadable, not audio, corrupt, empty, or float
        samples that are NaN/Inf.
    """
    path = Path(path)
    if not path.exists():
        raise SpeechgenError(f"{path}: no such file")
    if path.is_dir():
        raise SpeechgenError(f"{path}: is a directory, expected an audio file")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except PermissionError:
        raise SpeechgenError(f"{path}: permission denied") from None
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot be read ({err.strerror})") from None
    if head.startswith(b"NIST_1A\n"):
        from .sphere import read_sphere

        rate, raw = read_sphere(path)
    elif head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        try:
            rate, raw = _read_riff(path)
        except (ValueError, EOFError, OSError, IndexError, struct.error) as err:
            raise SpeechgenError(f"{path}: corrupt or truncated WAV file ({err})") from None
    else:
        raise SpeechgenError(
            f"{path}: not a WAV or NIST SPHERE file (convert it to WAV, e.g. with sox)"
        )
    if raw.ndim not in (1, 2) or raw.shape[0] == 0:
        raise SpeechgenError(f"{path}: holds no samples")
    audio = Audio(path, rate, raw)
    if raw.dtype.kind == "f":
        _check_finite(audio)
    return audio


def _check_finite(audio):
    for lo in range(0, len(audio), CHUNK):
        block = np.asarray(audio.raw[lo : lo + CHUNK])
        if not np.isfinite(block).all():
            bad = lo + int(np.argmin(np.isfinite(block).reshape(len(block), -1).all(axis=1)))
            raise SpeechgenError(
                f"{audio.path}: float sample {bad} is NaN or infinite; clean the file first"
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
