"""Splitting by time and normalisation from the training split only."""

import numpy as np
import pytest

from conftest import write_pcm16
from speechgen.data.corpus import Normaliser, load_corpus, split_by_time


def test_split_by_time_tiles_the_signal():
    bounds = split_by_time(1001, [0.8, 0.1, 0.1])
    assert bounds == {"train": (0, 801), "valid": (801, 901), "test": (901, 1001)}


def test_normalisation_statistics_ignore_valid_and_test(tmp_path):
    rate = 1000
    quiet = 0.1 * np.sin(np.arange(8000) / 5.0)
    loud = np.full(2000, 0.9)  # valid + test: far louder, with a large DC offset
    corpus = load_corpus(write_pcm16(tmp_path / "a.wav", rate, np.concatenate([quiet, loud])), [0.8, 0.1, 0.1])
    norm = Normaliser.fit("meanrange", corpus.splits["train"])
    train = corpus.splits["train"][0].read()
    assert len(train) == 8000
    assert norm.center == pytest.approx(train.mean(), abs=1e-6)
    assert norm.scale == pytest.approx(train.max() - train.min(), abs=1e-6)
    assert norm.scale < 0.25  # the valid/test level (0.9) would have made it > 0.9


def test_minmax_maps_training_audio_to_unit_range_and_inverts(tmp_path):
    x = np.linspace(-0.2, 0.6, 5000)
    corpus = load_corpus(write_pcm16(tmp_path / "b.wav", 1000, x), [0.8, 0.1, 0.1])
    norm = Normaliser.fit("minmax", corpus.splits["train"])
    y = norm.apply(corpus.splits["train"][0].read())
    assert y.min() == pytest.approx(-1, abs=1e-6) and y.max() == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(norm.invert(y), corpus.splits["train"][0].read(), atol=1e-6)
    assert Normaliser.from_dict(norm.to_dict()) == norm


def test_silent_training_split_is_refused(tmp_path):
    from speechgen.errors import SpeechgenError

    corpus = load_corpus(write_pcm16(tmp_path / "s.wav", 1000, np.zeros(3000)), [0.8, 0.1, 0.1])
    with pytest.raises(SpeechgenError, match="constant"):
        Normaliser.fit("meanrange", corpus.splits["train"])
