"""Synthetic audio and corpora written as real files, for the tests and the benchmarks.

One function per kind of signal, each seeded and parameterised:

- :func:`chord` / :func:`chord_blocks`: sines (by default 220, 330 and 550 Hz), with an
  optional slow vibrato and white noise; blocks keep hours of audio in bounded memory;
- :func:`phone_tones`: one pure tone per phone segment, so the labels say what sounds;
- :func:`white_noise`.

:func:`write_pcm16` writes 16-bit WAV (the same bytes as ``scipy.io.wavfile.write``,
streamed block by block), :func:`write_sphere16` NIST SPHERE; :func:`write_utterance`
adds the ``.PHN`` labels beside either. The corpus folders (:func:`chord_corpus`,
:func:`tone_corpus`, :func:`timit_tree`, :func:`utterance_corpus`) are built from those.
Nothing here imports speechgen, so a test of speechgen reading audio does not check
speechgen against itself.

Tests import it as ``from fixtures import ...`` (pytest puts tests/ on ``sys.path``);
benchmarks/bench_data.py puts tests/ on ``sys.path`` itself.
"""

import struct
from pathlib import Path

import numpy as np

CHORD_HZ = (220.0, 330.0, 550.0)
CHORD_AMPS = (0.3, 0.25, 0.2)
CHORD_PHASES = (0, 1, 2)
VIBRATO_HZ = 0.3
# Phone -> tone (Hz) for :func:`phone_tones`.
TONES = {"aa": 220.0, "iy": 440.0}
# Labels for corpora whose phones do not shape the sound (pipeline and speed checks).
PHONES = ("h#", "aa", "iy", "s", "m", "t", "eh", "n")


# ------------------------------------------------------------------------ signals

def chord_blocks(rate, seconds, freqs=CHORD_HZ, amps=CHORD_AMPS, phases=CHORD_PHASES, vibrato=0.0,
                 noise=0.0, seed=0, block_seconds=60):
    """``sum_k amps[k] * sin(2 pi freqs[k] (1 + vibrato sin(2 pi 0.3 t)) t + phases[k])`` plus
    Gaussian noise of std ``noise`` (seeded), for ``int(rate * seconds)`` samples.

    Yields float64 arrays of ``block_seconds`` each (the last one shorter); joined, they
    are the same samples whatever the block size. The default chord's common period
    (1/110 s) is not a multiple of the test hops, so training windows see every phase,
    as with real audio.
    """
    n = int(rate * seconds)
    block = max(1, int(rate * block_seconds))
    rng = np.random.default_rng(seed)
    for start in range(0, n, block):
        t = np.arange(start, min(n, start + block)) / rate
        if vibrato:
            wobble = 1 + vibrato * np.sin(2 * np.pi * VIBRATO_HZ * t)
            x = sum(a * np.sin(2 * np.pi * f * wobble * t + p) for a, f, p in zip(amps, freqs, phases))
        else:
            x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in zip(amps, freqs, phases))
        if noise:
            x = x + rng.normal(scale=noise, size=t.size)
        yield x


def chord(rate, seconds, freqs=CHORD_HZ, amps=CHORD_AMPS, phases=CHORD_PHASES, vibrato=0.0, noise=0.0, seed=0):
    """:func:`chord_blocks` as one float64 array of ``int(rate * seconds)`` samples."""
    blocks = chord_blocks(rate, seconds, freqs, amps, phases, vibrato, noise, seed)
    return np.concatenate([np.zeros(0), *blocks])


def phone_tones(rate, segments, tones=TONES, amp=0.4, continuous_phase=True):
    """One sine of ``amp`` per segment at ``tones[phone]`` Hz.

    Args:
        segments: ``(start, end, phone)`` in samples, in order, covering ``[0, n)``.
        continuous_phase: True: each tone starts at the phase where the last one ended
            (no click at a boundary); False: every tone is ``sin(2 pi f t)`` of the
            utterance's time ``t`` (a jump at each boundary).
    Returns:
        float64 samples, ``segments[-1][1]`` of them.
    """
    pieces, phase = [np.zeros(0)], 0.0
    for start, end, phone in segments:
        f, m = tones[phone], end - start
        if continuous_phase:
            pieces.append(amp * np.sin(phase + 2 * np.pi * f * np.arange(m) / rate))
            phase += 2 * np.pi * f * m / rate
        else:
            pieces.append(amp * np.sin(2 * np.pi * f * (np.arange(start, end) / rate)))
    return np.concatenate(pieces)


def white_noise(rate, seconds, scale=0.2, seed=0):
    """Gaussian noise of std ``scale``, ``int(rate * seconds)`` samples (float64)."""
    return scale * np.random.default_rng(seed).normal(size=int(rate * seconds))


# ------------------------------------------------------------------------- labels

def equal_segments(n, phones):
    """``n`` samples cut into ``len(phones)`` equal parts, one phone each, in order."""
    k = len(phones)
    return [(n * j // k, n * (j + 1) // k, p) for j, p in enumerate(phones)]


# -------------------------------------------------------------------------- files

def _riff_header(rate, channels, n_frames):
    data = 2 * channels * n_frames
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, 2 * channels * rate, 2 * channels, 16)
            + b"data" + struct.pack("<I", data))


def write_pcm16(path, rate, samples):
    """Write float samples in [-1, 1] as a 16-bit PCM RIFF WAV; return the path.

    Args:
        samples: an array ``(n,)`` or ``(n, channels)``, or an iterable of such arrays
            (blocks, written one at a time: hours of audio in bounded memory).
            Clipped to [-1, 1], then ``round(x * 32767)``.
    """
    path = Path(path)
    blocks = [samples] if isinstance(samples, (np.ndarray, list, tuple)) else samples
    frames, channels = 0, None
    with open(path, "wb") as f:
        f.write(_riff_header(rate, 1, 0))  # sizes filled in at the end
        for block in blocks:
            pcm = np.round(np.clip(np.asarray(block), -1, 1) * 32767).astype("<i2")
            channels = channels or (pcm.shape[1] if pcm.ndim == 2 else 1)
            f.write(pcm.tobytes())
            frames += pcm.shape[0]
        f.seek(0)
        f.write(_riff_header(rate, channels or 1, frames))
    return path


def write_sphere16(path, rate, samples):
    """Write float samples in [-1, 1] as NIST SPHERE (TIMIT's format): a 1024-byte ASCII
    header, then little-endian 16-bit PCM, ``round(x * 32767)``; return the path."""
    pcm = np.round(np.clip(np.asarray(samples), -1, 1) * 32767).astype("<i2")
    channels = pcm.shape[1] if pcm.ndim == 2 else 1
    fields = ["NIST_1A", f"{1024:7d}", f"channel_count -i {channels}", f"sample_count -i {pcm.shape[0]}",
              f"sample_rate -i {int(rate)}", "sample_n_bytes -i 2", "sample_byte_format -s2 01",
              "sample_coding -s3 pcm", "sample_sig_bits -i 16", "end_head"]
    header = ("\n".join(fields) + "\n").encode("ascii")
    Path(path).write_bytes(header.ljust(1024, b" ") + pcm.tobytes())
    return Path(path)


def write_phn(path, segments):
    """A TIMIT ``.PHN`` file: one ``start end phone`` line per segment (samples)."""
    Path(path).write_text("".join(f"{a} {b} {p}\n" for a, b, p in segments))
    return Path(path)


def write_utterance(path, rate, samples, segments=None, sphere=False):
    """``samples`` as a WAV (or NIST SPHERE) file, with ``segments`` (if any) in the
    ``.PHN`` beside it; parent folders are made. Returns the audio path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if sphere:
        write_sphere16(path, rate, samples)
    else:
        write_pcm16(path, rate, samples)
    if segments is not None:
        write_phn(path.with_suffix(".PHN"), segments)
    return path


# ------------------------------------------------------------------------ corpora

def chord_corpus(root, rate, n_utts, seconds, freqs=CHORD_HZ, vibrato=0.0, noise=0.0, seed=0, phones=None,
                 segment_samples=(640, 1920), name="u{}"):
    """A flat folder of chord utterances, optionally with labels that do not shape the sound.

    Args:
        seconds: each utterance's length, or ``(shortest, longest)`` drawn uniformly.
        freqs: the chord's frequencies, or a function of the utterance index giving them.
        noise: noise std; utterance ``u``'s noise is seeded ``seed + u``.
        phones: None for no ``.PHN``; else segments of ``segment_samples`` (drawn
            uniformly, the last one cut at the end) each with a phone drawn from these.
        name: format of the file stem from the utterance index.
    Returns:
        ``root``. Lengths and labels come from one generator seeded ``seed``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for u in range(n_utts):
        length = rng.uniform(*seconds) if isinstance(seconds, (tuple, list)) else seconds
        f = freqs(u) if callable(freqs) else freqs
        x = chord(rate, length, freqs=f, vibrato=vibrato, noise=noise, seed=seed + u)
        segments = None
        if phones is not None:
            n, pos, segments = len(x), 0, []
            while pos < n:
                end = min(n, pos + int(rng.integers(*segment_samples)))
                segments.append((pos, end, phones[int(rng.integers(len(phones)))]))
                pos = end
        write_utterance(root / f"{name.format(u)}.wav", rate, x, segments)
    return root


def tone_corpus(root, rate=4000, n_utts=16, seconds=2.0, segment_s=(0.2, 0.45), orders=(("aa", "iy"), ("iy", "aa")),
                tones=TONES, amp=0.4, continuous_phase=True, noise=0.0, seed=0, name="u{:02d}"):
    """A flat folder of utterances whose phones each sound as a pure tone, exact ``.PHN``.

    Args:
        segment_s: ``(shortest, longest)`` phone length in seconds, drawn uniformly,
            until the utterance reaches ``seconds`` (the last phone runs to its drawn
            end, so the audio can be a little longer); None: the utterance is cut
            into equal parts, one per phone of its order.
        orders: utterance ``u`` cycles through the phones of ``orders[u % len(orders)]``.
        continuous_phase: see :func:`phone_tones`.
        noise: std of white noise added to every utterance.
    Returns:
        ``root``. Lengths and noise come from one generator seeded ``seed``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    for u in range(n_utts):
        order = orders[u % len(orders)]
        if segment_s is None:
            segments = equal_segments(n, order)
        else:
            lo, hi, segments, pos = int(segment_s[0] * rate), int(segment_s[1] * rate), [], 0
            while pos < n:
                m = int(rng.integers(lo, hi))
                segments.append((pos, pos + m, order[len(segments) % len(order)]))
                pos += m
        x = phone_tones(rate, segments, tones, amp, continuous_phase)
        if noise:
            x = x + noise * rng.normal(size=len(x))
        write_utterance(root / f"{name.format(u)}.wav", rate, x, segments)
    return root


def noise_utterance(path, rate=8000, seconds=0.5, seed=0, sphere=False, labelled=True, phones=("h#", "aa")):
    """One white-noise utterance (std 0.2), WAV or (``sphere``) NIST SPHERE; if
    ``labelled``, a ``.PHN`` of ``phones`` in equal parts. Returns the audio path."""
    x = white_noise(rate, seconds, 0.2, seed)
    return write_utterance(path, rate, x, equal_segments(len(x), phones) if labelled else None, sphere)


def timit_tree(root, speakers_train=5, speakers_test=2, utts=3, rate=8000):
    """A TIMIT-layout tree (``TRAIN|TEST/DR1/<speaker>/SX<u>.WAV``, SPHERE audio,
    ``.PHN``) of :func:`noise_utterance` s, utterance ``u`` of speaker ``s`` seeded
    ``10 s + u``. Returns ``root``."""
    root = Path(root)
    for split, n_spk in (("TRAIN", speakers_train), ("TEST", speakers_test)):
        for s in range(n_spk):
            for u in range(utts):
                noise_utterance(root / split / "DR1" / f"{split[:2]}SPK{s}" / f"SX{u}.WAV", rate,
                                seed=s * 10 + u, sphere=True)
    return root


def utterance_corpus(root, rate=4000, n_utts=8):
    """Utterances of 2-5 s (drawn, seed 0), chords whose lowest note cycles through 110,
    220, 330 and 440 Hz, no labels: in batches of a few rows, rows start new utterances
    mid-epoch (what distributed training and mid-epoch resume must get right)."""
    return chord_corpus(root, rate, n_utts, (2.0, 5.0), freqs=lambda u: (110.0 * (1 + u % 4), 330.0, 550.0))


def untrained_phone_model(path, corpus_path, rate, split=(0.5, 0.25, 0.25), window=80):
    """A frame-level phone model with random weights and the corpus' inventory, saved
    to ``path``: the report's wiring needs a model, not a good one."""
    from speechgen.data.corpus import Normaliser, load_corpus
    from speechgen.data.phones import inventory_of, median_durations
    from speechgen.model.model import SpeechRNN

    corpus = load_corpus(corpus_path, list(split))
    pieces = [p for s in corpus.splits.values() for p in s]
    model = SpeechRNN(
        window=window, hop=window, units=[8], sample_rate=rate,
        normaliser=Normaliser.fit("minmax", corpus.splits["train"]).to_dict(),
        train_config={"data": str(corpus_path), "split": list(split), "seed": 0, "phone_folding": "none",
                      "splits": {"layout": corpus.layout, **corpus.split_names()}},
        phones=inventory_of(pieces).to_list(), phone_durations=median_durations(pieces, None, rate),
    )
    model.save(path)
    return corpus
