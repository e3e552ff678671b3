"""Baselines: the LPC fit, and bits per sample of the histogram and LPC models."""

import numpy as np
import pytest
from scipy.signal import lfilter

from conftest import CORPORA, requires_corpora
from speechgen.data.quantise import bin_edges, quantise
from speechgen.measures import baselines as B

# x[t] = 1.6 x[t-1] - 0.8 x[t-2] + e[t]: poles at radius 0.89, a 1.1 kHz-ish resonance.
AR2 = (1.6, -0.8)
# var(x) / var(e) of that process: (1 - a2) / ((1 + a2) ((1 - a2)^2 - a1^2)).
AR2_GAIN = (1 + 0.8) / ((1 - 0.8) * ((1 + 0.8) ** 2 - 1.6**2))


def ar2(n, seed, std=0.1):
    """The AR(2) process scaled to ``std`` (so it stays well inside [-1, 1])."""
    e = np.random.default_rng(seed).standard_normal(n)
    x = lfilter([1.0], [1.0, -AR2[0], -AR2[1]], e)
    return x * std / np.sqrt(AR2_GAIN)


def test_evaluate_uses_the_baselines_module():
    from speechgen import evaluate

    assert evaluate.fit_lpc is B.fit_lpc and evaluate.PREDICTORS is B.PREDICTORS
    assert evaluate._fits is B._fits


def test_fit_lpc_recovers_known_ar_coefficients():
    x = ar2(200_000, seed=0)
    a = B.fit_lpc([x], None, 2)
    # a[-1] multiplies x[t-1]: [a2, a1].
    np.testing.assert_allclose(a, [AR2[1], AR2[0]], atol=0.02)
    # Higher orders put ~0 on the extra lags.
    a4 = B.fit_lpc([x[:100_000], x[100_000:]], None, 4)
    np.testing.assert_allclose(a4, [0, 0, AR2[1], AR2[0]], atol=0.02)


def test_fit_lpc_reads_pieces_through_the_normaliser():
    class Piece:  # what a corpus piece offers fit_lpc: len() and read(lo, hi)
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def read(self, lo, hi):
            return self.x[lo:hi].astype(np.float32)

    from speechgen.data.corpus import Normaliser

    x = ar2(50_000, seed=1)
    from_pieces = B.fit_lpc([Piece(4.0 * x + 0.5)], Normaliser("meanrange", 0.5, 4.0), 3, chunk=7_000)
    np.testing.assert_allclose(from_pieces, B.fit_lpc([x], None, 3), atol=1e-4)
    # Pre-emphasised: chunk by chunk (each reading its true previous sample) as on the whole.
    emphasised = Normaliser("meanrange", 0.5, 4.0, 0.9)
    whole = emphasised.apply((4.0 * x + 0.5).astype(np.float32))
    np.testing.assert_allclose(B.fit_lpc([Piece(4.0 * x + 0.5)], emphasised, 3, chunk=7_000),
                               B.fit_lpc([whole], None, 3), atol=1e-4)


def test_histogram_model_is_add_half_smoothed():
    probs = B.histogram_model(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(probs, np.array([3.5, 1.5, 0.5]) / 5.5)
    assert B.histogram_bits(probs, [2]) == pytest.approx(np.log2(11))


def test_histogram_bits_of_uniform_noise_is_8_and_of_a_constant_0():
    rng = np.random.default_rng(2)
    classes = quantise(rng.uniform(-1, 1, 300_000), 256, "linear")
    probs = B.histogram_model(classes[:200_000], 256)
    assert B.histogram_bits(probs, classes[200_000:]) == pytest.approx(8.0, abs=0.05)
    constant = quantise(np.full(10_000, 0.01), 256, "mulaw")
    probs = B.histogram_model(constant, 256)
    bits = B.histogram_bits(probs, constant)
    assert bits == pytest.approx(-np.log2(10_000.5 / (10_000 + 128)), rel=1e-9)  # 0.018
    assert bits < 0.05


def test_lpc_class_probabilities_sum_to_one_and_tails_stay_finite():
    for scheme in ("mulaw", "linear"):
        for dist in B.RESIDUALS:
            for pred, scale in ((0.0, 0.01), (0.37, 0.002), (-0.999, 1e-4), (5.0, 0.1)):
                classes = np.arange(256)
                bits = B.lpc_class_bits(np.full(256, pred), classes, scale, 256, scheme, dist)
                assert np.all(np.isfinite(bits)) and bits.max() <= -np.log2(B.PROB_FLOOR) + 1e-9
                assert np.sum(2.0**-bits) == pytest.approx(1.0, abs=256 * B.PROB_FLOOR + 1e-9)
    # Numeric reference: 2 linear classes split at 0, Laplace centred at 0 -> 1 bit each.
    np.testing.assert_allclose(B.lpc_class_bits([0.0, 0.0], [0, 1], 0.3, 2, "linear"), [1.0, 1.0])
    # One class's mass is the Laplace CDF difference over its edges.
    edges = bin_edges(256, "linear")
    q, pred, b = 140, 0.05, 0.02
    cdf = lambda z: 0.5 * np.exp(z) if z < 0 else 1 - 0.5 * np.exp(-z)
    mass = cdf((edges[q + 1] - pred) / b) - cdf((edges[q] - pred) / b)
    assert B.lpc_class_bits([pred], [q], b, 256, "linear")[0] == pytest.approx(-np.log2(mass), rel=1e-9)


def test_lpc_bits_on_an_ar2_process_beat_the_histogram_by_its_prediction_gain():
    train, test = ar2(100_000, seed=3), ar2(50_000, seed=4)
    model = B.histogram_model(quantise(train, 256, "linear"), 256)
    hist = B.histogram_bits(model, quantise(test, 256, "linear"))
    gauss = B.lpc_bits(train, test, order=2, levels=256, scheme="linear", dist="gaussian")
    laplace = B.lpc_bits(train, test, order=2, levels=256, scheme="linear", dist="laplace")
    # Fine bins: bits ~ differential entropy - log2(bin width), so the saving is
    # log2(std(x) / std(e)) = 0.5 log2(13.2) = 1.86 bits.
    assert hist - gauss == pytest.approx(0.5 * np.log2(AR2_GAIN), abs=0.05)
    # The residual is Gaussian: a Laplace fit costs log2(2 e sqrt(2 / pi) / sqrt(2 pi e)) more.
    penalty = np.log2(2 * np.e * np.sqrt(2 / np.pi) / np.sqrt(2 * np.pi * np.e))  # 0.072
    assert laplace - gauss == pytest.approx(penalty, abs=0.02)
    assert laplace < hist - 1.5
    with pytest.raises(ValueError, match="residual"):
        B.lpc_bits(train, test, order=2, dist="cauchy")


@requires_corpora("prompts-real")
@pytest.mark.corpus
@pytest.mark.slow
def test_laplace_beats_gaussian_on_real_speech():
    from scipy.io import wavfile

    files = sorted((CORPORA / "prompts-real").glob("*.wav"))
    utterances = [wavfile.read(f)[1].astype(np.float64) / 32768 for f in files]
    train, test = utterances[0::2], utterances[1::2]
    pooled = np.concatenate(train)
    # meanrange normalisation, the project's default (see speechgen.data.corpus).
    centre, scale = pooled.mean(), pooled.max() - pooled.min()
    train = [(u - centre) / scale for u in train]
    test = [(u - centre) / scale for u in test]
    hist = B.histogram_bits(
        B.histogram_model(quantise(np.concatenate(train)), 256), quantise(np.concatenate(test))
    )
    laplace = B.lpc_bits(train, test, order=32, dist="laplace")
    gauss = B.lpc_bits(train, test, order=32, dist="gaussian")
    print(f"histogram {hist:.3f}, lpc laplace {laplace:.3f}, gaussian {gauss:.3f} bits/sample")
    assert laplace < gauss < hist
