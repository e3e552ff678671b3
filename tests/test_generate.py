"""The compiled generation loop against the Keras model stepped one call at a time."""

import keras
import numpy as np
import pytest

from speechgen.generate import Generator, prime_steps
from speechgen.model import SpeechRNN


def model_for(window, hop, batch_size=3, **kw):
    keras.utils.set_random_seed(3)
    return SpeechRNN(window=window, hop=hop, units=[16, 8], batch_size=batch_size, output_activation="tanh", **kw)


def reference(model, prime, n_steps, phones=None):
    """Generation the slow, obvious way: one Keras call per step, every stream at once.

    prime: (N, samples); phones: (N, prime_steps + n_steps, C) or None.
    Returns (N, n_steps * hop).
    """
    prime = np.atleast_2d(prime)
    n = prime.shape[0]
    net = model.with_batch_size(n)
    net.reset_rnn_states()
    w, h = model.window, model.hop
    steps = prime_steps(prime.shape[1], w, h)
    used = prime[:, prime.shape[1] - ((steps - 1) * h + w) :]

    def call(window, t):
        x = window[:, None, :]
        return net([x, phones[:, t : t + 1]] if phones is not None else x).numpy()[:, 0]

    for t in range(steps):
        y = call(used[:, t * h : t * h + w], t)
    window, out = np.concatenate([used[:, used.shape[1] - w + h :], y], axis=1), [y]
    for t in range(steps, steps + n_steps - 1):
        y = call(window, t)
        out.append(y)
        window = np.concatenate([window[:, h:], y], axis=1)
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("hoist", [False, True])
@pytest.mark.parametrize("window, hop", [(12, 12), (16, 1), (10, 4)])
def test_compiled_generation_equals_keras_step_by_step(window, hop, hoist):
    model = model_for(window, hop, hoist_input=hoist)
    prime = np.random.default_rng(0).normal(scale=0.3, size=57).astype("float32")
    n_steps = 25
    expected = reference(model, prime, n_steps)[0]
    got = Generator(model).generate(prime, n_steps * hop)
    assert got.shape == expected.shape == (n_steps * hop,)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("hoist", [False, True])
@pytest.mark.parametrize("hop, context, embedding", [(1, 1, 0), (1, 3, 5), (16, 1, 0)])
def test_phone_conditioned_generation_of_n_streams_equals_keras(hop, context, embedding, hoist):
    phones = ["aa", "h#", "iy", "s"]
    model = model_for(16, hop, phones=phones, phone_context=context, phone_embedding=embedding, hoist_input=hoist)
    rng = np.random.default_rng(4)
    prime = rng.normal(scale=0.3, size=(3, 40)).astype("float32")
    n_steps = 30
    ids = rng.integers(0, len(phones), size=(3, prime_steps(40, 16, hop) + n_steps, context)).astype("int32")
    expected = reference(model, prime, n_steps, ids)
    got = Generator(model, streams=3).generate(prime, n_steps * hop, phones=ids)
    assert got.shape == (3, n_steps * hop)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The phones matter: other phones, other audio.
    other = Generator(model, streams=3).generate(prime, n_steps * hop, phones=(ids + 1) % len(phones))
    assert not np.allclose(other, got, atol=1e-3)


def test_generation_is_chunked_with_state_carried_and_reports_progress():
    model = model_for(8, 8)
    prime = np.random.default_rng(1).normal(scale=0.3, size=40).astype("float32")
    seen = []
    gen = Generator(model)
    window, first = gen.prime(prime)
    chunked = gen.free_run(window, 30, chunk_steps=8, progress=lambda d, n, s: seen.append((d, n)))
    assert chunked.shape == (1, 30 * 8)
    window, first2 = gen.prime(prime)
    whole = gen.free_run(window, 30, chunk_steps=30)
    np.testing.assert_allclose(first, first2, atol=1e-6)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert seen == [(8, 30), (16, 30), (24, 30), (30, 30)]


def test_prime_steps():
    assert prime_steps(10, 16, 16) == 0
    assert prime_steps(16, 16, 16) == 1
    assert prime_steps(47, 16, 1) == 32
    assert prime_steps(57, 10, 4) == 12
