"""Counter-based random numbers for generation, in ``keras.ops`` integer maths.

A draw is a pure function of a *key* ``(seed, step, sub)`` (three int32: the run's
seed, the model step, the sample within the step) and of each element's position in
the drawn shape, so:

- the compiled generation loop, an eager step-by-step reference and a run continued in
  pieces see the same numbers (no generator state to carry or restore);
- TensorFlow (eager or XLA) and JAX give bit-identical numbers: nothing here depends
  on a backend's random-number generator (XLA's and TensorFlow's differ for the same
  seed, and JAX's threefry differs from both);
- stream ``n`` of an ``N``-stream run draws what stream ``n`` of any wider run draws
  (the element index of a leading stream axis is the stream's number).

The hash is Chris Wellons' ``lowbias32`` integer finaliser (two multiply-xorshift
rounds, full avalanche), applied once per key word and once for the element index:
~20 integer operations per number, negligible next to the model's matrix products.
Training randomness (dropout, noise, scheduled sampling) stays with Keras' seed
generators; this module is for the draws of free-running generation.
"""

import math

import keras
import numpy as np

ops = keras.ops

_M1, _M2 = 0x7FEB352D, 0x846CA68B
_GOLDEN = 0x9E3779B9


def _u32(x):
    return ops.convert_to_tensor(np.uint32(x), "uint32")


def mix(x):
    """lowbias32 on a ``uint32`` tensor (wrapping multiplies, logical shifts)."""
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(16)))
    x = ops.multiply(x, _u32(_M1))
    x = ops.bitwise_xor(x, ops.right_shift(x, _u32(15)))
    x = ops.multiply(x, _u32(_M2))
    return ops.bitwise_xor(x, ops.right_shift(x, _u32(16)))


def key(seed, step=0, sub=0):
    """The key of one draw: ``(seed, step, sub)`` as an int32 tensor of shape (3,)
    (Python ints or traced scalars; all taken modulo 2**32)."""
    parts = [ops.cast(ops.convert_to_tensor(v), "int32") if not isinstance(v, int)
             else ops.convert_to_tensor(np.int32(np.uint32(v % 2**32).view(np.int32)), "int32")
             for v in (seed, step, sub)]
    return ops.stack(parts)


def bits(shape, draw_key):
    """``shape`` uniformly random ``uint32`` words for ``draw_key`` (see :func:`key`)."""
    words = ops.cast(draw_key, "uint32")
    h = mix(ops.add(words[0], _u32(_GOLDEN)))
    h = mix(ops.bitwise_xor(h, words[1]))
    h = mix(ops.bitwise_xor(h, words[2]))
    count = int(np.prod(shape)) if len(shape) else 1
    index = ops.cast(ops.arange(count, dtype="int32"), "uint32")
    return ops.reshape(mix(ops.bitwise_xor(mix(ops.add(index, h)), h)), tuple(shape))


def uniform(shape, draw_key):
    """Uniform in the open interval (0, 1), float32: the top 24 bits of :func:`bits`
    plus half a step, so neither 0 nor 1 occurs (logs stay finite)."""
    top = ops.cast(ops.right_shift(bits(shape, draw_key), _u32(8)), "float32")
    return (top + 0.5) * (1.0 / 2**24)


def normal(shape, draw_key):
    """Standard normal, float32 (Box-Muller on two uniforms per element)."""
    pair = uniform((2, *shape), draw_key)
    radius = ops.sqrt(-2.0 * ops.log(pair[0]))
    return radius * ops.cos((2.0 * math.pi) * pair[1])
