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


def test_pre_emphasis_round_trips_and_reads_mid_piece_like_the_whole(tmp_path):
    """apply -> invert gives the audio back; a block read in the middle of a piece (the
    pipeline's rows, primes) equals the same samples of the whole piece normalised,
    because read() fetches the sample before it; fit sees the emphasised audio."""
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(0, 0.01, 6000))  # low-pass-heavy, like speech
    x = 0.8 * x / np.max(np.abs(x))
    corpus = load_corpus(write_pcm16(tmp_path / "e.wav", 1000, x), [0.8, 0.1, 0.1])
    piece = corpus.splits["train"][0]
    raw = piece.read().astype(np.float64)
    norm = Normaliser.fit("minmax", [piece], emphasis=0.9)
    e = raw - 0.9 * np.concatenate([[0.0], raw[:-1]])  # numeric reference
    assert norm.emphasis == 0.9
    assert norm.scale == pytest.approx((e.max() - e.min()) / 2, rel=1e-5)
    whole = norm.apply(piece.read())
    np.testing.assert_allclose(whole, (e - norm.center) / norm.scale, atol=1e-5)
    np.testing.assert_allclose(norm.invert(whole), raw, atol=1e-5)
    np.testing.assert_allclose(norm.read(piece, 1234, 1300), whole[1234:1300], atol=1e-6)
    np.testing.assert_allclose(norm.read(raw, 1234, 1300), whole[1234:1300], atol=1e-6)
    np.testing.assert_allclose(norm.read(piece, 0, 50), whole[:50], atol=1e-6)
    assert Normaliser.from_dict(norm.to_dict()) == norm
    # A model saved before the setting existed had none.
    assert Normaliser.from_dict({"kind": "minmax", "center": 0.0, "scale": 1.0}).emphasis == 0.0
    # Quality measures see the audio: plain() de-emphasises, and is the identity without emphasis.
    np.testing.assert_allclose(norm.plain(whole), raw, atol=1e-5)
    flat = Normaliser("minmax", 0.0, 1.0)
    assert flat.plain(whole) is whole
    # A continuation (a generated stream after its prime) is inverted from where the
    # prime ends, not from silence: exactly the tail of the whole (2-D: streams too).
    cut = 2000
    np.testing.assert_allclose(norm.invert(whole[cut:], whole[:cut]), raw[cut:], atol=1e-5)
    assert np.max(np.abs(norm.invert(whole[cut:]) - raw[cut:])) > 1e-2  # from silence: off
    two = np.stack([whole, whole[::-1]])
    np.testing.assert_allclose(norm.plain(two[:, cut:], two[:, :cut]), norm.invert(two)[:, cut:], atol=1e-9)
    np.testing.assert_allclose(flat.invert(whole[cut:], whole[:cut]), whole[cut:])


def test_pre_emphasis_tilts_the_spectrum_as_its_filter_says():
    """|1 - a e^{-jw}|: a 3 kHz tone gains against a 100 Hz one by the filter's ratio
    (about 27 dB at a = 0.97, 16 kHz)."""
    rate, a, n = 16000, 0.97, 16000
    t = np.arange(n) / rate
    norm = Normaliser("minmax", 0.0, 1.0, a)
    gain = {}
    for f in (100.0, 3000.0):
        y = norm.apply(np.sin(2 * np.pi * f * t))[100:]
        gain[f] = np.sqrt(2 * np.mean(y.astype(np.float64) ** 2))
        w = 2 * np.pi * f / rate
        assert gain[f] == pytest.approx(abs(1 - a * np.exp(-1j * w)), rel=1e-3)
    assert 20 * np.log10(gain[3000.0] / gain[100.0]) > 25


def test_peak_keeps_silence_at_zero_where_mulaw_steps_are_finest(tmp_path):
    """Asymmetric audio: minmax moves silence off 0, peak keeps it there, and the
    training audio still lies within [-1, 1] touching one end; both invert exactly."""
    from speechgen.data.quantise import dequantise, quantise

    x = np.concatenate([np.linspace(-0.2, 0.6, 4000), np.zeros(1000)])
    corpus = load_corpus(write_pcm16(tmp_path / "b.wav", 1000, x), [0.8, 0.1, 0.1])
    train = corpus.splits["train"][0].read()
    peak, minmax = (Normaliser.fit(kind, corpus.splits["train"]) for kind in ("peak", "minmax"))
    assert peak.center == 0.0 and peak.scale == pytest.approx(0.6, abs=1e-4)
    y = peak.apply(train)
    assert y.max() == pytest.approx(1, abs=1e-6) and y.min() == pytest.approx(-1 / 3, abs=1e-3)
    np.testing.assert_allclose(peak.invert(y), train, atol=1e-6)
    assert peak.apply(np.zeros(1))[0] == 0.0 and minmax.apply(np.zeros(1))[0] == pytest.approx(-0.5, abs=1e-3)
    # A quiet sound (1e-3 of full scale) survives 256-level mu-law to within a few per
    # cent when silence is at 0, and not at all where minmax put silence.
    quiet = 1e-3 * np.sin(np.linspace(0, 20, 500))

    def error(norm):
        y = norm.apply(quiet)
        back = norm.invert(dequantise(quantise(y, 256, "mulaw"), 256, "mulaw"))
        return np.sqrt(np.mean((back - quiet) ** 2)) / np.sqrt(np.mean(quiet ** 2))

    assert error(peak) < 0.1 < 1.0 < error(minmax)
    assert Normaliser.from_dict(peak.to_dict()) == peak
