"""The compiled generation loop against the Keras model stepped one call at a time."""

import keras
import numpy as np
import pytest

from speechgen.generate import Generator, prime_steps
from speechgen.model import SpeechRNN


def model_for(window, hop, batch_size=3):
    keras.utils.set_random_seed(3)
    return SpeechRNN(window=window, hop=hop, units=[16, 8], batch_size=batch_size, output_activation="tanh")


def reference(model, prime, n_steps):
    """Generation the slow, obvious way: one Keras call per step on a batch-1 copy."""
    net = model.with_batch_size(1)
    net.reset_rnn_states()
    w, h = model.window, model.hop
    steps = prime_steps(len(prime), w, h)
    used = prime[len(prime) - ((steps - 1) * h + w) :]
    y = None
    for t in range(steps):
        y = net(used[None, None, t * h : t * h + w]).numpy()[0, 0]
    window, out = np.concatenate([used[len(used) - w + h :], y]), [y]
    for _ in range(n_steps - 1):
        y = net(window[None, None, :]).numpy()[0, 0]
        out.append(y)
        window = np.concatenate([window[h:], y])
    return np.concatenate(out)


@pytest.mark.parametrize("window, hop", [(12, 12), (16, 1), (10, 4)])
def test_compiled_generation_equals_keras_step_by_step(window, hop):
    model = model_for(window, hop)
    prime = np.random.default_rng(0).normal(scale=0.3, size=57).astype("float32")
    n_steps = 25
    expected = reference(model, prime, n_steps)
    got = Generator(model).generate(prime, n_steps * hop)
    assert got.shape == expected.shape == (n_steps * hop,)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_generation_is_chunked_with_state_carried_and_reports_progress():
    model = model_for(8, 8)
    prime = np.random.default_rng(1).normal(scale=0.3, size=40).astype("float32")
    seen = []
    gen = Generator(model)
    window, first = gen.prime(prime)
    chunked = gen.free_run(window, 30, chunk_steps=7, progress=lambda d, n, s: seen.append((d, n)))
    window, first2 = gen.prime(prime)
    whole = gen.free_run(window, 30, chunk_steps=30)
    np.testing.assert_allclose(first, first2, atol=1e-6)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert seen == [(7, 30), (14, 30), (21, 30), (28, 30), (30, 30)]


def test_prime_steps():
    assert prime_steps(10, 16, 16) == 0
    assert prime_steps(16, 16, 16) == 1
    assert prime_steps(47, 16, 1) == 32
    assert prime_steps(57, 10, 4) == 12
