"""From files to splits: which stretches of audio are train, valid and test.

A :class:`Corpus` maps each split name to a list of :class:`Piece` (a contiguous
stretch of one file). One WAV file is split by time, before any windowing, so no
training window can reach into valid or test audio. The :class:`Normaliser` is fitted
on the training pieces only and travels with the model.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import Audio, read_audio
from .errors import SpeechgenError

SPLITS = ("train", "valid", "test")


@dataclass
class Piece:
    """Samples ``[start, stop)`` of ``audio``."""

    audio: Audio
    start: int
    stop: int

    def __len__(self):
        return self.stop - self.start

    def read(self, start=0, stop=None):
        """Float32 mono samples of this piece; offsets are relative to the piece."""
        stop = len(self) if stop is None else stop
        return self.audio.read(self.start + start, self.start + stop)


@dataclass
class Corpus:
    """Audio split into train/valid/test pieces, all at one sample ``rate`` (Hz)."""

    source: str
    rate: int
    splits: dict

    def seconds(self, split):
        return sum(len(p) for p in self.splits[split]) / self.rate


def split_by_time(n_samples, fractions):
    """Sample boundaries of consecutive train/valid/test parts of one signal.

    Args:
        n_samples: signal length.
        fractions: three fractions summing to 1.
    Returns:
        dict split -> (start, stop); the parts tile ``[0, n_samples)``.
    """
    edges = np.round(np.cumsum([0.0, *fractions]) * n_samples).astype(int)
    edges[-1] = n_samples
    return {name: (int(edges[i]), int(edges[i + 1])) for i, name in enumerate(SPLITS)}


def load_corpus(path, fractions):
    """Open training data: one audio file, split by time.

    Args:
        path: a WAV or SPHERE file.
        fractions: (train, valid, test) fractions.
    Raises:
        SpeechgenError: unreadable audio.
    """
    path = Path(path)
    if path.is_dir():
        raise SpeechgenError(
            f"{path}: is a directory; corpus folders (TIMIT layout) are not supported "
            "yet, give one WAV file"
        )
    audio = read_audio(path)
    bounds = split_by_time(len(audio), fractions)
    splits = {name: [Piece(audio, lo, hi)] if hi > lo else [] for name, (lo, hi) in bounds.items()}
    return Corpus(str(path.resolve()), audio.rate, splits)


def reopen_corpus(train_config, data=None):
    """The corpus a model was trained on (or ``data``), split as in training.

    Args:
        train_config: a model's saved training config (has ``data`` and ``split``).
        data: another file to use instead, split the same way.
    """
    data = data or train_config["data"]
    if not Path(data).exists():
        raise SpeechgenError(
            f"{data}: the model's training data is not there any more; give the data explicitly"
        )
    return load_corpus(data, train_config["split"])


@dataclass
class Normaliser:
    """``y = (x - center) / scale``, fitted on the training split only.

    ``meanrange`` (write-up 1): center = mean, scale = max - min, so training audio lies
    within a unit-wide band around 0. ``minmax``: center = (max + min) / 2 and
    scale = (max - min) / 2, so training audio spans exactly [-1, 1].
    """

    kind: str
    center: float
    scale: float

    @classmethod
    def fit(cls, kind, pieces):
        """Statistics from ``pieces`` (the training split), read in bounded chunks."""
        total, count, lo, hi = 0.0, 0, np.inf, -np.inf
        for piece in pieces:
            for block in piece.audio.chunks(piece.start, piece.stop):
                total += float(block.sum(dtype=np.float64))
                count += block.size
                lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        if count == 0:
            raise SpeechgenError("the training split is empty; give more audio")
        if hi <= lo:
            raise SpeechgenError("the training split is constant (silence?); nothing to learn")
        if kind == "meanrange":
            return cls(kind, total / count, hi - lo)
        if kind == "minmax":
            return cls(kind, (hi + lo) / 2, (hi - lo) / 2)
        raise SpeechgenError(f"unknown normalisation {kind!r}")

    def apply(self, x):
        return ((x - self.center) / self.scale).astype(np.float32)

    def invert(self, y):
        return np.asarray(y, dtype=np.float64) * self.scale + self.center

    def to_dict(self):
        return {"kind": self.kind, "center": float(self.center), "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, d):
        return cls(d["kind"], float(d["center"]), float(d["scale"]))
