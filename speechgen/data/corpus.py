"""From files to splits: which stretches of audio are train, valid and test.

A :class:`Corpus` maps each split name to a list of :class:`Piece` (a contiguous
stretch of one file, with its phone labels when it has them). Splits are made before
any windowing, so no training window can reach into valid or test audio:

- one file is split by time (``split`` fractions, 80/10/10 by default);
- a TIMIT layout (``TRAIN/`` and ``TEST/`` folders) keeps its test set and carves the
  valid set from TRAIN by speaker (the speaker is the folder holding the utterance);
- any other folder is split by utterance, shuffled with the run's seed.

The chosen utterance lists are recorded in the model, so ``evaluate`` and ``sample``
see exactly the training split even if files are added to the folder later. The
:class:`Normaliser` is fitted on the training pieces only and travels with the model.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import Audio, read_audio
from ..errors import SpeechgenError
from .labels import read_phn
from .trim import segments_within, sounding_span, trim_of

SPLITS = ("train", "valid", "test")
AUDIO_SUFFIXES = (".wav",)


@dataclass
class Piece:
    """Samples ``[start, stop)`` of ``audio``, with optional phone ``segments``.

    ``segments`` are :class:`speechgen.labels.Segment` relative to the piece's ``start``
    (only utterance pieces carry them: a whole file, or one trimmed of its silent ends);
    ``labels`` is the ``.PHN`` path, for messages.
    """

    audio: Audio
    start: int
    stop: int
    name: str = ""
    segments: list = None
    labels: Path = None

    def __len__(self):
        return self.stop - self.start

    def read(self, start=0, stop=None):
        """Float32 mono samples of this piece; offsets are relative to the piece."""
        stop = len(self) if stop is None else stop
        return self.audio.read(self.start + start, self.start + stop)


@dataclass
class Corpus:
    """Audio split into train/valid/test pieces, all at one sample ``rate`` (Hz).

    ``layout`` is ``file``, ``timit`` or ``flat``; ``root`` the file or folder given.
    """

    source: str
    rate: int
    splits: dict
    layout: str = "file"
    root: Path = None
    labelled: bool = False
    notes: list = field(default_factory=list)

    def seconds(self, split):
        return sum(len(p) for p in self.splits[split]) / self.rate

    def split_names(self):
        """Utterance names (paths relative to the folder) per split, for the record."""
        return {s: [p.name for p in pieces] for s, pieces in self.splits.items()}


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


def load_corpus(path, fractions, seed=0, splits=None, trim=None):
    """Open training data: one audio file split by time, or a folder of utterances.

    Args:
        path: a WAV/SPHERE file or a folder (TIMIT layout or flat).
        fractions: (train, valid, test) fractions.
        seed: shuffles a flat folder's utterances / picks TIMIT valid speakers.
        splits: recorded utterance names per split (from a model) to reuse.
        trim: None, or ``(top_db, margin)``: each file (each utterance) keeps only
            :func:`sounding_span`, its phone labels shifted to match; a single file is
            trimmed before it is split by time.
    Raises:
        SpeechgenError: unreadable audio or labels, mixed sample rates, empty folder.
    """
    path = Path(path)
    if not path.exists():
        raise SpeechgenError(f"{path}: no such file or folder")
    if path.is_dir():
        return _load_folder(path, fractions, seed, splits, trim)
    audio = read_audio(path)
    first, last = sounding_span(audio, *trim) if trim else (0, len(audio))
    bounds = split_by_time(last - first, fractions)
    pieces = {
        name: [Piece(audio, first + lo, first + hi, f"{path.name}[{name}]")] if hi > lo else []
        for name, (lo, hi) in bounds.items()
    }
    corpus = Corpus(str(path.resolve()), audio.rate, pieces, "file", path)
    if trim:
        corpus.notes.append(_trimmed_note(len(audio) - (last - first), len(audio), audio.rate, trim))
    return corpus


def _utterance_files(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise SpeechgenError(f"{root}: no .wav/.WAV files in this folder or below")
    audio_stems = {f.with_suffix("").as_posix().lower() for f in files}
    for phn in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".phn"):
        if phn.with_suffix("").as_posix().lower() not in audio_stems:
            raise SpeechgenError(f"{phn}: label file without its audio (no matching .wav/.WAV)")
    return files


def labels_beside(audio_path):
    """The ``.PHN``/``.phn`` file beside an audio file, or None."""
    for suffix in (".PHN", ".phn"):
        candidate = audio_path.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def _top_folder(root, f):
    return f.relative_to(root).parts[0].upper() if len(f.relative_to(root).parts) > 1 else ""


def _assign(root, files, fractions, seed):
    """Split names -> list of files, by the TIMIT rule or by shuffled utterance."""
    rng = np.random.default_rng(seed)
    tops = {_top_folder(root, f) for f in files}
    if "TRAIN" in tops and "TEST" in tops:
        train = [f for f in files if _top_folder(root, f) == "TRAIN"]
        test = [f for f in files if _top_folder(root, f) == "TEST"]
        speakers = sorted({f.parent.name for f in train})
        share = fractions[1] / max(fractions[0] + fractions[1], 1e-12)
        n_valid = min(len(speakers) - 1, max(1, round(share * len(speakers))))
        if n_valid < 1:
            raise SpeechgenError(f"{root}/TRAIN: one speaker only; valid needs a speaker of its own")
        valid_speakers = set(rng.choice(speakers, size=n_valid, replace=False).tolist())
        return "timit", {
            "train": [f for f in train if f.parent.name not in valid_speakers],
            "valid": [f for f in train if f.parent.name in valid_speakers],
            "test": test,
        }
    order = rng.permutation(len(files))
    n = len(files)
    n_train, n_valid = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    n_valid = max(1, n_valid) if fractions[1] > 0 else 0
    n_train = min(n_train, n - n_valid)
    if n_train < 1 or n_valid < 1:
        raise SpeechgenError(f"{root}: {n} utterance(s) are too few to split into train and valid")
    chosen = [files[i] for i in order]
    return "flat", {
        "train": sorted(chosen[:n_train]),
        "valid": sorted(chosen[n_train : n_train + n_valid]),
        "test": sorted(chosen[n_train + n_valid :]),
    }


def _load_folder(root, fractions, seed, recorded, trim):
    if recorded:
        layout = recorded.get("layout", "flat")
        assigned = {}
        for split in SPLITS:
            assigned[split] = [root / name for name in recorded.get(split, [])]
            missing = [f for f in assigned[split] if not f.exists()]
            if missing:
                raise SpeechgenError(f"{missing[0]}: listed in the model's {split} split but missing")
    else:
        layout, assigned = _assign(root, _utterance_files(root), fractions, seed)
    rates, pieces, labelled, cut, total = {}, {}, [], 0, 0
    for split, files in assigned.items():
        pieces[split] = []
        for f in files:
            audio = read_audio(f)
            rates.setdefault(audio.rate, f)
            if len(rates) > 1:
                (r1, f1), (r2, f2) = list(rates.items())[:2]
                raise SpeechgenError(
                    f"{f2}: sample rate {r2} Hz differs from {f1} ({r1} Hz); a corpus needs one "
                    "rate: resample the files first"
                )
            phn = labels_beside(f)
            segments = read_phn(phn, len(audio)) if phn else None
            labelled.append(segments is not None)
            name = f.relative_to(root).as_posix()
            first, last = sounding_span(audio, *trim) if trim else (0, len(audio))
            if segments is not None:
                segments = segments_within(segments, first, last)
            pieces[split].append(Piece(audio, first, last, name, segments, phn))
            cut, total = cut + len(audio) - (last - first), total + len(audio)
    corpus = Corpus(str(root.resolve()), next(iter(rates)), pieces, layout, root, all(labelled))
    if trim:
        corpus.notes.append(_trimmed_note(cut, total, corpus.rate, trim))
    if any(labelled) and not all(labelled):
        corpus.notes.append(f"{labelled.count(False)} of {len(labelled)} utterances have no .PHN")
    return corpus


def _trimmed_note(cut, total, rate, trim):
    """What trimming removed, for the training log (users pick the threshold by it)."""
    return (f"trim_silence {trim[0]:g} dB cut {cut / rate:.1f} s of silent ends, "
            f"{100 * cut / max(total, 1):.1f} % of the audio (margin {trim[1]:g} s kept)")


def reopen_corpus(train_config, data=None, hint="move it back"):
    """The corpus a model was trained on (or ``data``), split as in training.

    Args:
        train_config: a model's saved training config (``data``, ``split``, ``seed`` and,
            for folders, the recorded ``splits``).
        data: another file or folder to use instead, split by the same rules.
        hint: what the caller's user can do when the training data has moved (it ends
            the error message; name options the calling command has).
    """
    same = data is None or Path(data).resolve() == Path(train_config["data"]).resolve()
    # The training data itself keeps its recorded split (even given explicitly, and
    # even after files were added); other data is split by the same rules.
    recorded = train_config.get("splits") if same else None
    data = data or train_config["data"]
    if same and not Path(data).exists():  # (other data: load_corpus names it)
        raise SpeechgenError(
            f"{data}: the model's training data is not there any more; {hint}"
        )
    return load_corpus(data, train_config["split"], train_config.get("seed", 0), recorded,
                       trim_of(train_config.get("trim_silence", 0.0), train_config.get("trim_margin", 0.0)))


def read_span(source, start, stop):
    """Samples ``[start, stop)`` of a corpus piece (anything with ``.read``) or of an array."""
    return source.read(start, stop) if hasattr(source, "read") else np.asarray(source)[start:stop]


@dataclass
class Normaliser:
    """``y = (e - center) / scale``, fitted on the training split only.

    ``e`` is the audio ``x`` itself, or with ``emphasis`` a > 0 its pre-emphasis
    ``e[n] = x[n] - a x[n-1]`` (LPCNet, Tacotron's vocoders): a first-order high-pass
    that lifts 1-4 kHz by some 20-30 dB against 100 Hz (a = 0.9-0.97), so the formants
    of speech are not drowned by the quantisation step of the loud low harmonics.
    Models learn and generate in these units; :meth:`invert` undoes both steps
    (de-emphasis, ``x[n] = e[n] + a x[n-1]``), so written audio is in the file's units.

    ``meanrange`` (write-up 1): center = mean, scale = max - min, so training audio lies
    within a unit-wide band around 0. ``minmax``: center = (max + min) / 2 and
    scale = (max - min) / 2, so training audio spans exactly [-1, 1]. ``peak``:
    center = 0 and scale = max |e|, so training audio lies in [-1, 1] and silence stays
    at 0, where mu-law quantisation has its finest steps (WaveNet and SampleRNN scale
    audio so); minmax moves silence to -center / scale, which for asymmetric peaks
    (prompts-real: -0.027) puts quiet sounds on steps about 8 times coarser. Yet the
    speech recipe generated worse with ``peak`` (it learns the quiet floor well enough
    to stay in it; docs/generation.md), so the recipes keep ``minmax``.
    """

    kind: str
    center: float
    scale: float
    emphasis: float = 0.0

    @classmethod
    def fit(cls, kind, pieces, emphasis=0.0):
        """Statistics from ``pieces`` (the training split), read in bounded chunks, of
        the pre-emphasised audio when ``emphasis`` > 0."""
        total, count, lo, hi = 0.0, 0, np.inf, -np.inf
        for piece in pieces:
            before = np.zeros(1, np.float32)  # silence before each piece, as apply() assumes
            for block in piece.audio.chunks(piece.start, piece.stop):
                if emphasis:
                    block, before = _emphasise(block, emphasis, before[-1]), block[-1:]
                total += float(block.sum(dtype=np.float64))
                count += block.size
                lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        if count == 0:
            raise SpeechgenError("the training split is empty; give more audio")
        if hi <= lo:
            raise SpeechgenError("the training split is constant (silence?); nothing to learn")
        if kind == "meanrange":
            return cls(kind, total / count, hi - lo, emphasis)
        if kind == "minmax":
            return cls(kind, (hi + lo) / 2, (hi - lo) / 2, emphasis)
        if kind == "peak":
            # Zero stays zero: mu-law's finest steps stay on silence and quiet sounds.
            return cls(kind, 0.0, max(-lo, hi), emphasis)
        raise SpeechgenError(f"unknown normalisation {kind!r}")

    def apply(self, x):
        """Audio ``(..., samples)`` -> model units. With emphasis, the sample before
        ``x[..., 0]`` is taken as silence: right at a piece's start; elsewhere use
        :meth:`read`, which reads the true one."""
        if self.emphasis:
            x = _emphasise(np.asarray(x, np.float32), self.emphasis, 0.0)
        return ((x - self.center) / self.scale).astype(np.float32)

    def read(self, source, start, stop):
        """``source.read(start, stop)`` (a piece, audio, or a 1-D array) in model units.
        With emphasis, the sample before ``start`` is read too, so a block read in the
        middle of a piece equals the same samples of the whole piece normalised."""
        if not self.emphasis or start <= 0:
            return self.apply(read_span(source, start, stop))
        return self.apply(read_span(source, start - 1, stop))[..., 1:]

    def invert(self, y, before=None):
        """Model units ``(..., samples)`` -> the file's units, float64 (de-emphasised
        along the last axis, the inverse of :meth:`apply`). De-emphasis starts from
        silence, or, given ``before`` (model units ``(..., k)``: what came just before
        ``y``, e.g. the prime of a generated stream), from where that audio ends, so a
        continuation is inverted as a part of the whole."""
        if before is not None and self.emphasis:
            before = np.asarray(before)
            return self.invert(np.concatenate([before, np.asarray(y)], axis=-1))[..., before.shape[-1]:]
        e = np.asarray(y, dtype=np.float64) * self.scale + self.center
        if not self.emphasis:
            return e
        from scipy.signal import lfilter

        return lfilter([1.0], [1.0, -self.emphasis], e, axis=-1)

    def plain(self, y, before=None):
        """Signals for the quality measures (spectra, voicing): ``y`` itself without
        emphasis, else :meth:`invert`'s audio (continuing ``before``), so that a
        pre-emphasised model is judged by the audio it writes, not by its tilted model
        units."""
        return self.invert(y, before) if self.emphasis else y

    def to_dict(self):
        return {"kind": self.kind, "center": float(self.center), "scale": float(self.scale),
                "emphasis": float(self.emphasis)}

    @classmethod
    def from_dict(cls, d):
        # Models saved before pre-emphasis existed have no "emphasis": they had none.
        return cls(d["kind"], float(d["center"]), float(d["scale"]), float(d.get("emphasis", 0.0)))


def _emphasise(x, a, before):
    """``e[n] = x[n] - a x[n-1]`` along the last axis, ``x[-1] = before``."""
    e = np.array(x, np.float32, copy=True)
    e[..., 1:] -= np.float32(a) * x[..., :-1]
    e[..., 0] -= np.float32(a * before)
    return e
