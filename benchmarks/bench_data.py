"""The benchmarks' synthetic audio (written by tests/fixtures.py) and the training
pipeline over it.

The audio: a noisy three-note chord (220, 330, 550 Hz) with a slow vibrato at 16 kHz, as
one WAV, or as a flat folder of utterances with ``.PHN`` labels (segments of 40-120 ms,
phones drawn at random: they do not shape the sound; the pipeline and the speed do not
care).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from fixtures import PHONES, chord_blocks, chord_corpus, write_pcm16  # noqa: E402

RATE = 16000
# The suite's chord: vibrato depth 1 % at 0.3 Hz, white noise of std 0.02.
NOISY = {"vibrato": 0.01, "noise": 0.02}


def write_wav(path, seconds, seed=0, rate=RATE):
    """The noisy chord as one 16-bit WAV, written a minute at a time."""
    return write_pcm16(path, rate, chord_blocks(rate, seconds, seed=seed, **NOISY))


def write_phone_folder(folder, n_utts, seconds, seed=0, rate=RATE):
    """``n_utts`` noisy-chord utterances of ``seconds`` (``u000.wav``, ...) with random
    ``.PHN`` labels of 640-1920 samples from ``PHONES``."""
    return chord_corpus(folder, rate, n_utts, seconds, seed=seed, phones=PHONES, segment_samples=(640, 1920),
                        name="u{:03d}", **NOISY)


def write_long_wav(path, hours, rate=RATE):
    """Hours of a noisier two-note chord (0.2 x 220 Hz + 0.1 x 330 Hz, noise 0.02), written
    block by block (bounded memory; benchmarks/memory.py)."""
    return write_pcm16(path, rate, chord_blocks(rate, 3600 * hours, freqs=(220.0, 330.0), amps=(0.2, 0.1),
                                                phases=(0, 0), noise=0.02))


def training_data(p, tmp):
    """Write the synthetic data of measurement ``p`` into ``tmp`` and build the training
    pipeline over it, as ``speechgen train`` does.

    ``p``: ``preset``, ``sets`` (config overrides), ``data`` (``file``: one WAV of
    ``seconds``; ``folder``: ``utterances`` x ``seconds`` with ``.PHN``).
    Returns ``(config, corpus, normaliser, phones, data path, dataset, schedule)``.
    """
    from speechgen.config import load_config
    from speechgen.data.corpus import Normaliser, load_corpus
    from speechgen.data.trim import trim_of
    from speechgen.data.pipeline import split_batches
    from speechgen.data.framing import Framing
    from speechgen.train import _phones_for

    config = load_config([p["preset"]], [f"{k}={json.dumps(v)}" for k, v in p.get("sets", {}).items()])
    if p["data"] == "file":
        data = write_wav(Path(tmp) / "audio.wav", p["seconds"])
    else:
        data = write_phone_folder(Path(tmp) / "corpus", p["utterances"], p["seconds"])
    corpus = load_corpus(data, config.split, config.seed, trim=trim_of(config.trim_silence, config.trim_margin))
    normaliser = Normaliser.fit(config.normalisation, corpus.splits["train"], config.pre_emphasis)
    phones = _phones_for(config, corpus)
    quantise = (config.levels, config.quantisation) if config.output == "categorical" else None
    ds, schedule = split_batches(corpus, "train", normaliser, Framing.of(config),
                                 config.batch_size, phones, quantise=quantise)
    return config, corpus, normaliser, phones, data, ds, schedule
