"""Baselines a model must beat, scored on the same targets as the model.

Regression (MSE, used by :mod:`speechgen.evaluate`):

- ``zero``, ``persistence`` and ``lpc`` (:func:`fit_lpc`, the least-squares linear
  predictor of the training split).

Categorical heads (bits per sample on quantised targets, see
:mod:`speechgen.data.quantise`):

- the class histogram of the training targets (:func:`histogram_model`,
  :func:`histogram_bits`): what a model that ignores the past can reach, the
  zero-predictor analogue (8 bits for uniform 8-bit noise, 0 for a constant);
- the LPC predictor with a discretised Laplace residual (:func:`lpc_bits`): the
  probability of a class is the residual density's mass between the class's bin
  edges, around the LPC prediction. A model that has learned less than linear
  prediction scores above it.

All in NumPy; samples in normalised units (those the classes were quantised from).
"""

import numpy as np

from ..data.corpus import read_span
from ..data.quantise import bin_edges, quantise
from ..errors import SpeechgenError

PREDICTORS = ("model", "zero", "persistence", "lpc")
# Probabilities are floored here before the log, so one impossible class costs about
# 40 bits instead of infinity.
PROB_FLOOR = 1e-12
RESIDUALS = ("laplace", "gaussian")


def _signals(audio):
    """A list of 1-D signals from one array or a list of arrays or pieces."""
    if isinstance(audio, np.ndarray) and audio.ndim == 1:
        return [audio]
    return list(audio)


def fit_lpc(pieces, normaliser, order, max_samples=2_000_000, chunk=100_000):
    """Least-squares coefficients ``a`` with ``x[t] ~ x[t-order:t] @ a``.

    Fitted on (up to ``max_samples`` target samples of) the normalised ``pieces``,
    accumulating ``X^T X`` and ``X^T y`` chunk by chunk, so memory stays bounded.
    ``pieces`` are corpus pieces (``.read(lo, hi)``) or 1-D arrays; ``normaliser``
    may be None for samples that are already in the units wanted. ``a[-1]``
    multiplies the latest sample ``x[t-1]``.

    Returns:
        float64 ``(order,)``.
    """
    xtx, xty, used = np.zeros((order, order)), np.zeros(order), 0
    for piece in pieces:
        for lo in range(0, max(0, len(piece) - order), chunk):
            hi = min(len(piece), lo + chunk + order)
            x = (read_span(piece, lo, hi) if normaliser is None else normaliser.read(piece, lo, hi)).astype(np.float64)
            windows = np.lib.stride_tricks.sliding_window_view(x[:-1], order)
            targets = x[order:]
            xtx += windows.T @ windows
            xty += windows.T @ targets
            used += len(targets)
            if used >= max_samples:
                break
        if used >= max_samples:
            break
    # A tiny ridge keeps the solve stable on silent or perfectly periodic audio.
    ridge = 1e-6 * np.trace(xtx) / order + 1e-12
    return np.linalg.solve(xtx + ridge * np.eye(order), xty)


def _fits(lengths, framing, batch):
    """Whether pieces of ``lengths`` samples fill ``batch`` rows under ``framing`` (a
    :class:`speechgen.data.framing.Framing`)."""
    from ..data.pipeline import plan

    try:
        plan(lengths, framing, batch)
        return True
    except SpeechgenError:
        return False


def histogram_model(classes, levels, alpha=0.5):
    """Class probabilities from training targets, smoothed by adding ``alpha`` to
    every count (``alpha = 0.5``: the Krichevsky-Trofimov estimator), so a class never
    seen in training costs a finite number of bits on held-out audio.

    Args:
        classes: int training targets, any shape, values in ``0 .. levels - 1``.
        levels: number of classes.
    Returns:
        float64 ``(levels,)``, summing to 1.
    """
    counts = np.bincount(np.asarray(classes).reshape(-1), minlength=levels)[:levels].astype(np.float64)
    return (counts + alpha) / (counts.sum() + alpha * levels)


def histogram_bits(model_probs, classes):
    """Mean ``-log2 p`` of ``classes`` (any shape) under the class probabilities
    ``model_probs`` ``(levels,)`` of :func:`histogram_model`: bits per sample."""
    p = np.maximum(np.asarray(model_probs, np.float64)[np.asarray(classes).reshape(-1)], PROB_FLOOR)
    return float(np.mean(-np.log2(p)))


def _windows_and_targets(signals, order, normaliser=None):
    """Yield ``(windows (m, order), targets (m,))`` float64 per signal, chunked."""
    for s in signals:
        for lo in range(0, max(0, len(s) - order), 100_000):
            hi = min(len(s), lo + 100_000 + order)
            x = (read_span(s, lo, hi) if normaliser is None else normaliser.read(s, lo, hi)).astype(np.float64)
            yield np.lib.stride_tricks.sliding_window_view(x[:-1], order), x[order:]


def residual_scale(pieces, coefficients, dist="laplace", normaliser=None):
    """Maximum-likelihood scale of the LPC residual on ``pieces`` (the training split):
    the mean absolute residual (Laplace ``b``) or its RMS (Gaussian ``sigma``), in
    normalised units. A tiny floor keeps it positive on perfectly predictable audio."""
    if dist not in RESIDUALS:
        raise ValueError(f"unknown residual distribution {dist!r}; choose from {RESIDUALS}")
    total, count = 0.0, 0
    for windows, targets in _windows_and_targets(_signals(pieces), len(coefficients), normaliser):
        e = targets - windows @ coefficients
        total += float(np.sum(np.abs(e)) if dist == "laplace" else np.sum(e**2))
        count += len(e)
    if not count:
        raise ValueError("no samples to fit the residual scale on")
    scale = total / count if dist == "laplace" else np.sqrt(total / count)
    return float(max(scale, 1e-9))


def _cdf_pair(lo, hi, dist):
    """Mass of the standard ``dist`` between ``lo < hi`` (arrays), computed from the
    nearer tail so that far-out bins do not vanish in ``1 - 1`` rounding."""
    if dist == "laplace":

        def lower(z):  # P(Z < z) for z <= 0
            return 0.5 * np.exp(np.minimum(z, 0.0))

    else:
        from scipy.special import ndtr

        lower = ndtr
    # Mirror bins that lie wholly above 0: mass(lo, hi) = mass(-hi, -lo).
    above = lo > 0
    lo, hi = np.where(above, -hi, lo), np.where(above, -lo, hi)
    # Now lo <= 0. Both below 0: F(hi) - F(lo); straddling 0: 1 - F(lo) - F(-hi).
    straddle = hi > 0
    straddling = 1.0 - lower(lo) - lower(-np.where(straddle, hi, 0.0))
    return np.where(straddle, straddling, lower(np.minimum(hi, 0.0)) - lower(lo))


def lpc_class_bits(predictions, classes, scale, levels=256, scheme="mulaw", dist="laplace"):
    """Per-sample ``-log2 p`` of ``classes`` under a discretised residual around
    ``predictions``.

    ``p(q) = F((e[q+1] - pred) / scale) - F((e[q] - pred) / scale)`` with the bin edges
    ``e`` of :func:`speechgen.data.quantise.bin_edges` (the end classes reach to
    +-infinity, holding the clipped tails), floored at ``PROB_FLOOR``.

    Args:
        predictions: float predictions in normalised units, any shape.
        classes: int classes of the same shape.
        scale: the residual scale (:func:`residual_scale`).
    Returns:
        float64 bits, the shape of ``classes``.
    """
    edges = bin_edges(levels, scheme)
    classes = np.asarray(classes)
    pred = np.asarray(predictions, np.float64)
    lo = (edges[classes] - pred) / scale
    hi = (edges[classes + 1] - pred) / scale
    with np.errstate(invalid="ignore"):  # inf - inf cannot happen: lo < hi always
        mass = _cdf_pair(lo, hi, dist)
    return -np.log2(np.maximum(mass, PROB_FLOOR))


def lpc_bits(train, test, order=32, levels=256, scheme="mulaw", dist="laplace"):
    """Bits per sample of the LPC baseline for a categorical head.

    The predictor is :func:`fit_lpc` of ``order`` on ``train``; the residual scale is
    fitted on ``train`` too (:func:`residual_scale`); ``test`` targets (from sample
    ``order`` of each signal on) are quantised with ``levels`` and ``scheme`` and
    scored with :func:`lpc_class_bits`.

    Laplace is the default because it is the lower of the two on real speech
    (speech residuals are spikier than Gaussian: glottal pulses, plosives). On
    prompts-real (order 32, every other utterance for training, the rest scored,
    ``meanrange``-normalised, 256 levels), in bits per sample:

    ========  =========  =======  ========
    scheme    histogram  Laplace  Gaussian
    ========  =========  =======  ========
    mu-law    7.46       5.41     5.93
    linear    5.31       3.06     3.49
    ========  =========  =======  ========

    Args:
        train, test: 1-D arrays, lists of arrays, or corpus pieces, in normalised units.
    Returns:
        float, mean bits per test sample.
    """
    train, test = _signals(train), _signals(test)
    a = fit_lpc(train, None, order)
    scale = residual_scale(train, a, dist)
    total, count = 0.0, 0
    for windows, targets in _windows_and_targets(test, order):
        bits = lpc_class_bits(windows @ a, quantise(targets, levels, scheme), scale, levels, scheme, dist)
        total += float(bits.sum())
        count += bits.size
    if not count:
        raise ValueError(f"no test signal is longer than the LPC order ({order})")
    return total / count


class CategoricalBaselines:
    """The bits-per-sample baselines of a categorical head, fitted once on the training
    split and scored on any split: the class histogram and LPC with a Laplace residual.

    Args:
        train: the training split's pieces (``.read``) or arrays.
        normaliser: turns their samples into normalised units (None: already are).
        levels, scheme: the head's quantisation.
        order: LPC order (32 by default for every model, so the baseline does not
            change with a model's window).
        max_samples: samples read per split at most, for bounded time and memory on
            long recordings (the first ones of each piece, in order).
    """

    def __init__(self, train, normaliser, levels=256, scheme="mulaw", order=32, max_samples=4_000_000):
        self.normaliser, self.levels, self.scheme = normaliser, levels, scheme
        self.order, self.max_samples = order, max_samples
        self.lpc = fit_lpc(train, normaliser, order, max_samples=max_samples)
        self.scale = residual_scale(train, self.lpc, "laplace", normaliser)
        counts = np.zeros(levels, np.int64)
        for _, targets in self._batches(train):
            counts += np.bincount(quantise(targets, levels, scheme), minlength=levels)[:levels]
        self.histogram = (counts + 0.5) / (counts.sum() + 0.5 * levels)

    def _batches(self, pieces):
        seen = 0
        for windows, targets in _windows_and_targets(pieces, self.order, self.normaliser):
            if seen >= self.max_samples:
                return
            seen += len(targets)
            yield windows, targets

    def score(self, pieces):
        """``{"histogram", "lpc"}``: mean bits per sample on ``pieces`` (after each
        piece's first ``order`` samples), or None where no piece is long enough."""
        totals, count = {"histogram": 0.0, "lpc": 0.0}, 0
        for windows, targets in self._batches(pieces):
            classes = quantise(targets, self.levels, self.scheme)
            totals["histogram"] += float(-np.log2(np.maximum(self.histogram[classes], PROB_FLOOR)).sum())
            bits = lpc_class_bits(windows @ self.lpc, classes, self.scale, self.levels, self.scheme)
            totals["lpc"] += float(np.sum(bits))
            count += len(targets)
        return {k: v / count for k, v in totals.items()} if count else None
