"""Shared fixtures: synthetic signals written as real WAV files, tiny configs."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def write_pcm16(path, rate, samples):
    """Write float samples in [-1, 1] as a 16-bit RIFF WAV (scipy), return the path."""
    from scipy.io import wavfile

    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    wavfile.write(path, rate, pcm)
    return Path(path)


def chord(rate, seconds, freqs=(220.0, 330.0, 550.0), amps=(0.3, 0.25, 0.2)):
    """Three sines. Their common period (1/110 s) is not a multiple of the test hops,
    so training windows see every phase, as with real audio."""
    t = np.arange(int(rate * seconds)) / rate
    return sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in zip(amps, freqs, (0, 1, 2)))


@pytest.fixture
def chord_wav(tmp_path):
    return write_pcm16(tmp_path / "chord.wav", 4000, chord(4000, 30))


def tiny_sets(**overrides):
    """``--set`` strings for a tiny frame-level model (seconds to train on 2 cores)."""
    values = {
        "window": 40,
        "hop": 40,
        "seq_len": 20,
        "batch_size": 8,
        "units": "[32,32]",
        "learning_rate": 0.01,
        "epochs": 3,
        "patience": 5,
    }
    values.update(overrides)
    return [f"{k}={v}" for k, v in values.items()]


def requires_corpora(name):
    path = CORPORA / name
    return pytest.mark.skipif(
        not path.exists(), reason=f"{path} is absent (shared corpora are only beside the project checkout)"
    )
