"""Reading and writing audio files.

Reading returns an :class:`Audio`: a lazily read, memory-mapped view of one file that
serves float32 mono samples in [-1, 1] on demand, so a long recording is never copied
into memory whole. RIFF WAV is read with ``scipy.io.wavfile`` (8-bit unsigned, 16/24/32/
64-bit signed, float32/64); NIST SPHERE (TIMIT's ``.WAV``) is detected by content and
read by :mod:`speechgen.sphere`. Several channels are mixed to mono by averaging them.
Writing produces 16-bit PCM WAV.
"""

import os
import struct
import warnings
from pathlib import Path

import numpy as np

from ..errors import SpeechgenError
from ..files import atomic_path

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

    def raw_samples(self, start=0, stop=None):
        """The stored samples ``[start, stop)``, shape ``(n,)`` or ``(n, channels)``.

        A memory-mapped file is read with ``os.pread`` of just those bytes instead of
        slicing the map: pages touched through a map stay resident and count in the
        process's RSS until the kernel evicts them, so streaming a 10-hour file through
        the map grows RSS by the whole file (measured: 142 MB -> 1165 MB), while
        positional reads keep it at the size of one block.
        """
        n = len(self)
        start, stop, _ = slice(start, stop).indices(n)
        if not isinstance(self.raw, np.memmap) or stop <= start:
            return self.raw[start:stop]
        frame = self.raw.dtype.itemsize * self.channels
        # Open per read: a corpus of thousands of files must not hold a descriptor each.
        fd = os.open(self.raw.filename, os.O_RDONLY)
        try:
            data = os.pread(fd, (stop - start) * frame, self.raw.offset + start * frame)
        finally:
            os.close(fd)
        if len(data) < (stop - start) * frame:
            raise SpeechgenError(f"{self.path}: the file got shorter while being read (changed on disk?)")
        block = np.frombuffer(data, dtype=self.raw.dtype)
        return block if self.channels == 1 else block.reshape(-1, self.channels)

    def read(self, start=0, stop=None):
        """Samples ``[start, stop)`` as float32 mono, shape ``(stop - start,)``."""
        block = np.asarray(self.raw_samples(start, stop), dtype=np.float32)
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


def _riff_layout(path, size):
    """Check the RIFF chunk structure up to the data chunk; raise a clear error if bad.

    scipy reads what it can and silently drops a cut-short data chunk or a trailing
    partial frame, and crashes with assorted exception types on broken headers; this
    walk names the problem instead. RF64 (sizes in a ds64 chunk) is left to scipy.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"RF64":
            return
        order = "<" if head[:4] == b"RIFF" else ">"
        pos, fmt = 12, None
        while True:
            f.seek(pos)
            header = f.read(8)
            if len(header) < 8:
                missing = "fmt" if fmt is None else "data"
                raise SpeechgenError(f"{path}: corrupt WAV file: no {missing} chunk (cut short?)")
            chunk, length = header[:4], struct.unpack(order + "I", header[4:])[0]
            available = size - pos - 8
            if chunk == b"fmt ":
                if available < min(length, 16):
                    raise SpeechgenError(f"{path}: corrupt or truncated WAV file: the header is cut short")
                if length < 16:
                    raise SpeechgenError(f"{path}: corrupt WAV file: fmt chunk too short ({length} bytes)")
                tag, channels, rate, _, align, bits = struct.unpack(order + "HHIIHH", f.read(16))
                for name, value in (("channels", channels), ("sample rate", rate),
                                    ("bits per sample", bits), ("block align", align)):
                    if value == 0:
                        raise SpeechgenError(f"{path}: corrupt WAV header: {name} is 0")
                fmt = (channels, bits, align)
            elif chunk == b"data":
                if fmt is None:
                    raise SpeechgenError(f"{path}: corrupt WAV file: data chunk before the fmt chunk")
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
                return
            pos += 8 + length + (length & 1)


def _read_riff(path):
    from scipy.io import wavfile

    _riff_layout(path, path.stat().st_size)
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
        except SpeechgenError:
            raise
        except PermissionError:
            raise SpeechgenError(f"{path}: permission denied") from None
        except Exception as err:  # noqa: BLE001
            # scipy's parser meets broken headers with many exception types
            # (ValueError, ZeroDivisionError, TypeError, UnboundLocalError ...): on a
            # file that starts like a WAV, each means the file is corrupt.
            detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
            raise SpeechgenError(f"{path}: corrupt or truncated WAV file ({detail})") from None
    else:
        raise SpeechgenError(
            f"{path}: not a WAV or NIST SPHERE file (convert it to WAV, e.g. with sox)"
        )
    if raw.ndim not in (1, 2) or raw.shape[0] == 0:
        raise SpeechgenError(f"{path}: holds no samples")
    audio = Audio(path, rate, raw)
    if raw.dtype.kind == "f":
        _check_float(audio)
    return audio


def _check_float(audio):
    """Refuse float samples that are NaN/Inf or outside [-1, 1], scanning in chunks.

    Float WAV is full scale at +-1; louder values would be used as they are and break
    the meaning of every level (normalisation, clipping on output), so they are an
    error with the fix, not a silent rescale.
    """
    for lo in range(0, len(audio), CHUNK):
        block = np.asarray(audio.raw_samples(lo, lo + CHUNK)).reshape(-1, audio.channels)
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
