"""Quantising samples to ``levels`` classes and back (categorical heads).

Samples are in normalised units, clipped to [-1, 1] first. Two maps:

- ``linear``: ``levels`` equal bins over [-1, 1] (SampleRNN's 8-bit linear);
- ``mulaw``: the ITU G.711 compander ``F(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)``
  with ``mu = levels - 1``, then equal bins over [-1, 1] (WaveNet, SampleRNN's
  mu-law variant): fine steps near zero, where speech spends most of its time.

Class ``q`` decodes to the centre of its bin (mapped back through ``F^-1`` for
mu-law). Written with ``numpy``-compatible operations so that the same function
serves NumPy arrays on the host and ``keras.ops`` tensors in a graph (``ops``
argument).
"""

import numpy as np

SCHEMES = ("mulaw", "linear")


def _mu(levels):
    return float(levels - 1)


def compand(x, levels, ops=np):
    """mu-law compander ``F`` on [-1, 1] (``mu = levels - 1``)."""
    mu = _mu(levels)
    return ops.sign(x) * ops.log1p(mu * ops.abs(x)) / float(np.log1p(mu))


def expand(y, levels, ops=np):
    """The inverse of :func:`compand`."""
    mu = _mu(levels)
    return ops.sign(y) * (ops.exp(ops.abs(y) * float(np.log1p(mu))) - 1.0) / mu


def quantise(x, levels=256, scheme="mulaw", ops=np):
    """Classes ``0 .. levels - 1`` of samples ``x`` (any shape, normalised units).

    Returns int32 of the same shape. Values outside [-1, 1] go to the end classes.
    """
    x = ops.clip(x, -1.0, 1.0)
    if scheme == "mulaw":
        x = compand(x, levels, ops)
    q = ops.floor((x + 1.0) * 0.5 * levels)
    q = ops.clip(q, 0, levels - 1)
    return ops.cast(q, "int32") if ops is not np else q.astype(np.int32)


def dequantise(q, levels=256, scheme="mulaw", ops=np):
    """The sample value (normalised units, float32) that class ``q`` stands for: the
    centre of its bin (in the companded domain for mu-law)."""
    q = ops.cast(q, "float32") if ops is not np else np.asarray(q, np.float32)
    y = (q + 0.5) * (2.0 / levels) - 1.0
    if scheme == "mulaw":
        y = expand(y, levels, ops)
    return y.astype(np.float32) if ops is np else y


def bin_edges(levels=256, scheme="mulaw"):
    """The ``levels + 1`` bin edges in sample units (float64), for turning a continuous
    density into class probabilities (the LPC baseline in bits)."""
    y = np.linspace(-1.0, 1.0, levels + 1)
    edges = expand(y, levels) if scheme == "mulaw" else y
    edges[0], edges[-1] = -np.inf, np.inf  # the end classes also hold the clipped tails
    return edges


def class_values(levels=256, scheme="mulaw"):
    """Every class's decoded value, ``(levels,)`` float32."""
    return dequantise(np.arange(levels), levels, scheme).astype(np.float32)
