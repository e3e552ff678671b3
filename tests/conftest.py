"""Shared fixtures: synthetic signals written as real WAV files (tests/fixtures.py), tiny configs."""

import os
from pathlib import Path

import pytest

# Many test files import these two from here.
from fixtures import chord, write_pcm16  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


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
