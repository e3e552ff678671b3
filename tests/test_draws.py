"""Counter-based draws (speechgen.model.draws): the hash against an independent NumPy
version, the same numbers eager and compiled, and the distributions."""

import numpy as np
import tensorflow as tf

from speechgen.data.framing import Framing
from speechgen.model import draws


def lowbias32(x):
    """Chris Wellons' lowbias32, in Python integers (the published constants)."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def reference_bits(n, seed, step, sub):
    h = lowbias32(seed + 0x9E3779B9)
    h = lowbias32(h ^ (step & 0xFFFFFFFF))
    h = lowbias32(h ^ (sub & 0xFFFFFFFF))
    return np.array([lowbias32(lowbias32(i + h) ^ h) for i in range(n)], np.uint64)


def test_bits_equal_an_independent_python_hash_eager_and_compiled():
    for seed, step, sub in [(0, 0, 0), (7, 3, 2), (2**32 - 1, 2**31 + 5, 15)]:
        key = draws.key(seed, step, sub)
        expected = reference_bits(24, seed, step, sub).reshape(4, 6)
        np.testing.assert_array_equal(np.asarray(draws.bits((4, 6), key)).astype(np.uint64), expected)
        compiled = tf.function(lambda k: draws.bits((4, 6), k), jit_compile=True)
        np.testing.assert_array_equal(np.asarray(compiled(key)).astype(np.uint64), expected)
    # A traced step gives the same key as a Python one.
    assert np.array_equal(draws.key(5, tf.constant(9), 1), draws.key(5, 9, 1))


def test_uniform_and_normal_have_their_distributions():
    u = np.asarray(draws.uniform((200_000,), draws.key(1, 2, 3)))
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() * 12 - 1) < 0.01
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 45  # 19 degrees of freedom: p ~ 0.001
    z = np.asarray(draws.normal((200_000,), draws.key(4)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((np.abs(z) < 1).mean() - 0.6827) < 0.005


def test_other_keys_give_other_numbers():
    base = np.asarray(draws.bits((1000,), draws.key(1, 2, 3)))
    for other in [(2, 2, 3), (1, 3, 3), (1, 2, 4)]:
        assert (np.asarray(draws.bits((1000,), draws.key(*other))) == base).mean() < 0.01


def test_step_inputs_equal_frame():
    x = np.random.default_rng(0).normal(size=(2, 77)).astype("float32")
    for framing in [Framing(16, 16), Framing(16, 1), Framing(10, 4, lookahead=3), Framing(8, 8, lookahead=7)]:
        inputs, _ = framing.frame(tf.constant(x))
        np.testing.assert_array_equal(framing.step_inputs(x), inputs.numpy())
