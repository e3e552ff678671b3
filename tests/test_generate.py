"""The compiled generation loop against the Keras model stepped one call at a time,
with the same seeds, for every head, tiers, phones, hoisting and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from speechgen.data.framing import Framing
from speechgen.generate import Generator, draw_key
from speechgen.model import SpeechRNN

SEED = 7


def model_for(window, hop, batch_size=3, units=(16, 8), **kw):
    keras.utils.set_random_seed(3)
    kw.setdefault("output_activation", "tanh")
    return SpeechRNN(window=window, hop=hop, units=list(units), batch_size=batch_size, **kw)


def reference(model, prime, n_steps, phones=None, temperature=1.0, noise=0.0):
    """Generation the slow, obvious way: one Keras call per step (per sample for tiered
    models, the LSTM state saved and put back between a step's samples), every stream
    at once, each draw made by the head with the seed the compiled loop uses. With an
    upper tier (``top_units``) each call covers one of its steps: ``ratio`` steps, the
    samples not drawn yet zero (a causal model does not read them).

    prime: (N, samples); phones: (N, prime_steps + n_steps, C) or None.
    Returns (N, n_steps * hop).
    """
    prime = np.atleast_2d(prime)
    n = prime.shape[0]
    net = model.with_batch_size(n)
    net.reset_rnn_states()
    framing = Framing.of(model)
    w, h, la, r = model.window, model.hop, framing.lookahead, framing.ratio
    assert n_steps % r == 0
    given, steps = framing.steps(prime.shape[1]), framing.prime_steps(prime.shape[1])
    skip = given - steps  # the prime's first steps that do not fill an upper step
    signal = prime[:, prime.shape[1] - (steps * h + w) :]
    start = signal.shape[1]

    def call(t):
        """Steps t .. t + r - 1 of ``signal``: (N, r, hop[, levels])."""
        x = np.stack([signal[:, (t + q) * h : (t + q) * h + w + la] for q in range(r)], axis=1)
        return net([x, phones[:, skip + t : skip + t + r]] if phones is not None else x)

    for t in range(0, steps, r):  # teacher-forced priming
        call(t)
    for b in range(0, n_steps, r):
        t = steps + b
        signal = np.concatenate([signal, np.zeros((n, r * h), np.float32)], axis=1)
        states = [v.numpy() for v in net._rnn_state_variables()]
        for q in range(r):
            first = w + (t + q) * h  # the step's first target sample in signal
            i = b + q  # the generated step's number
            if not la:
                for v, s in zip(net._rnn_state_variables(), states):
                    v.assign(s)
                y = net.head.sample(call(t)[:, q], draw_key(SEED, i), temperature, noise).numpy()
                signal[:, first : first + h] = y
                continue
            for j in range(h):
                for v, s in zip(net._rnn_state_variables(), states):
                    v.assign(s)
                logits = call(t)[:, q, j : j + 1]
                drawn = net.head.sample(logits, draw_key(SEED, i, j), temperature, noise).numpy()
                signal[:, first + j] = drawn[:, 0]
        # The last call read every sample the block's steps read: the state is the block's.
    return signal[:, start : start + n_steps * h]


def generated(model, prime, n_steps, phones=None, temperature=1.0, noise=0.0, streams=None, lookup=True):
    streams = streams or np.atleast_2d(prime).shape[0]
    gen = Generator(model, streams=streams, seed=SEED, temperature=temperature, noise=noise, lookup=lookup)
    out = gen.generate(prime, n_steps * model.hop, phones=phones)
    return np.atleast_2d(out)


HEADS = {
    "mse-tanh": dict(output="mse", output_activation="tanh"),
    "mse-linear": dict(output="mse", output_activation="linear"),
    "categorical": dict(output="categorical", levels=32),
    "categorical-linear-levels": dict(output="categorical", levels=16, quantisation="linear"),
}


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("window, hop, hoist", [(12, 12, False), (16, 1, False), (10, 4, True)])
def test_compiled_generation_equals_keras_step_by_step(window, hop, hoist, head):
    model = model_for(window, hop, hoist_input=hoist, **HEADS[head])
    prime = np.random.default_rng(0).normal(scale=0.3, size=(1, 57)).astype("float32")
    n_steps = 25
    noise = 0.05 if head.startswith("mse") else 0.0
    expected = reference(model, prime, n_steps, noise=noise)
    got = generated(model, prime, n_steps, noise=noise)
    assert got.shape == expected.shape == (1, n_steps * hop)
    np.testing.assert_allclose(got, expected, atol=1e-5)


# Input embedding is for categorical heads only (the config refuses it otherwise).
@pytest.mark.parametrize("head, embedding, lookup", [("categorical", 0, True), ("categorical", 4, True),
                                                    ("categorical", 4, False), ("mse-linear", 0, True)])
def test_tiered_generation_equals_keras_per_sample(head, embedding, lookup):
    """With an input embedding, ``lookup`` runs the predictor's first layer as tables
    (the default) or as the model's own Embedding and Dense: both equal Keras."""
    model = model_for(8, 8, units=(16,), predictor_units=[12, 10], input_embedding=embedding, **HEADS[head])
    prime = np.random.default_rng(2).normal(scale=0.3, size=(2, 45)).astype("float32")
    noise = 0.05 if head.startswith("mse") else 0.0
    expected = reference(model, prime, 6, noise=noise)
    got = generated(model, prime, 6, noise=noise, lookup=lookup)
    if embedding:
        assert (Generator(model, lookup=lookup)._table is not None) == lookup
    assert got.shape == (2, 48)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_refresh_follows_new_weights_with_the_same_compiled_loop():
    """Listening during training generates from one Generator whose model's weights are
    set anew at each check: after ``refresh`` it generates exactly what a Generator
    built on the new weights does (its lookup tables and its layers' weights), through
    the loop it compiled before; without ``refresh`` its tables are stale."""
    model = model_for(8, 8, units=(16,), predictor_units=[12], input_embedding=4, output="categorical", levels=32)
    other = model_for(8, 8, units=(16,), predictor_units=[12], input_embedding=4, output="categorical", levels=32)
    rng = np.random.default_rng(7)
    other.set_weights([w + rng.normal(scale=0.2, size=w.shape).astype(w.dtype) for w in other.get_weights()])
    prime = np.random.default_rng(2).normal(scale=0.3, size=(2, 45)).astype("float32")
    gen = Generator(model, streams=2, seed=SEED)
    gen.generate(prime, 6 * 8)
    traces = {n: loop.experimental_get_tracing_count() for n, loop in gen._loops.items()}  # tf.function's
    gen.model.set_weights(other.get_weights())  # the generator's own copy (batch size 2)
    stale = gen.generate(prime, 6 * 8)
    gen.refresh()
    fresh = gen.generate(prime, 6 * 8)
    assert {n: loop.experimental_get_tracing_count() for n, loop in gen._loops.items()} == traces  # no new trace
    expected = Generator(other, streams=2, seed=SEED).generate(prime, 6 * 8)
    np.testing.assert_array_equal(fresh, expected)
    assert not np.array_equal(stale, expected)


@pytest.mark.parametrize("hoist", [False, True])
@pytest.mark.parametrize("hop, context, embedding, tiered", [(1, 1, 0, False), (1, 3, 5, False), (16, 1, 0, False),
                                                             (8, 1, 3, True), (8, 4, 3, True)])
def test_phone_conditioned_generation_of_n_streams_equals_keras(hop, context, embedding, tiered, hoist):
    phones = ["aa", "h#", "iy", "s"]
    extra = dict(predictor_units=[8]) if tiered else {}
    model = model_for(16, hop, phones=phones, phone_context=context, phone_embedding=embedding, hoist_input=hoist,
                      output="categorical", levels=16, **extra)
    rng = np.random.default_rng(4)
    prime = rng.normal(scale=0.3, size=(3, 40)).astype("float32")
    n_steps = 12
    ids = rng.integers(0, len(phones), size=(3, Framing(16, hop).steps(40) + n_steps, context)).astype("int32")
    expected = reference(model, prime, n_steps, ids)
    got = generated(model, prime, n_steps, ids)
    assert got.shape == (3, n_steps * hop)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The phones reach the distribution the draws come from (an untrained model's draws
    # barely depend on them, so look at its logits): other phones, other logits.
    inputs = Framing.of(model).frame(tf.constant(prime))[0][:, :1]
    net = model.with_batch_size(3)
    a = net([inputs, tf.constant(ids[:, :1])]).numpy()
    net.reset_rnn_states()
    b = net([inputs, tf.constant((ids[:, :1] + 1) % len(phones))]).numpy()
    assert np.abs(a - b).max() > 1e-5  # exactly 0 if the phones were ignored


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("tiered", [False, True])
def test_mixed_precision_generation_equals_keras(policy, tiered):
    extra = dict(predictor_units=[8]) if tiered else {}
    model = model_for(8, 8 if tiered else 1, mixed_precision=policy, output="categorical", levels=16, **extra)
    prime = np.random.default_rng(5).normal(scale=0.3, size=(1, 30)).astype("float32")
    expected = reference(model, prime, 10)
    got = generated(model, prime, 10)
    # The same layers in the same 16-bit arithmetic: equal draws, not just close ones.
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_temperature_zero_is_argmax_and_seeds_repeat():
    model = model_for(16, 1, output="categorical", levels=32)
    prime = np.random.default_rng(0).normal(scale=0.3, size=(1, 40)).astype("float32")
    a, b = generated(model, prime, 50, temperature=0), generated(model, prime, 50, temperature=0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, reference(model, prime, 50, temperature=0), atol=1e-6)
    one = generated(model, prime, 50)
    same = Generator(model, seed=SEED).generate(prime, 50)
    other = Generator(model, seed=SEED + 1).generate(prime, 50)
    np.testing.assert_array_equal(one[0], same)
    assert not np.array_equal(one[0], other)


def test_temperature_sharpens_the_distribution():
    """Draws at T follow softmax(logits / T): a numeric check of the head's sampler."""
    from speechgen.model.heads import CategoricalHead

    head = CategoricalHead(4, "linear")
    logits = tf.constant(np.tile(np.log([[0.1, 0.2, 0.3, 0.4]]), (20000, 1))[:, None, :], tf.float32)
    values = head._values
    for t in (1.0, 0.5):
        drawn = np.asarray(head.sample(logits, draw_key(1, 2), t)).ravel()
        share = np.array([(drawn == v).mean() for v in values])
        p = np.array([0.1, 0.2, 0.3, 0.4]) ** (1 / t)
        np.testing.assert_allclose(share, p / p.sum(), atol=0.015)


@pytest.mark.parametrize("levels", [2, 3, 17, 256])
def test_the_two_level_sampler_is_the_inverse_cdf_of_the_same_uniforms(levels):
    """Block, then class inside it: the class whose cumulative probability (float64,
    NumPy) first reaches the draw's own uniform number, for square and non-square level
    counts (padded blocks: the classes past the end are never drawn), bar draws within
    float32 rounding of a boundary; at T = 0.7 too. Also under XLA, as generation runs it."""
    from speechgen.model import draws
    from speechgen.model.heads import CategoricalHead

    head = CategoricalHead(levels, "linear")
    rng = np.random.default_rng(levels)
    logits = (rng.normal(size=(4000, 1, levels)) * 2).astype("float32")
    logits[:50, 0, -1] = 30.0  # the last class almost certain: the padded tail must not be drawn
    key = draw_key(3, 4)
    u = np.asarray(draws.uniform((4000, 1, 1), key), np.float64)  # the sampler's own numbers
    for t in (1.0, 0.7):
        got = np.asarray(head.sample_classes(tf.constant(logits), key, t))
        jitted = np.asarray(tf.function(lambda x: head.sample_classes(x, key, t), jit_compile=True)(logits))
        z = logits.astype(np.float64) / t
        p = np.exp(z - z.max(-1, keepdims=True))
        cdf = np.cumsum(p / p.sum(-1, keepdims=True), -1)
        want = (cdf < u).sum(-1)
        near = np.abs(np.take_along_axis(cdf, np.minimum(want, levels - 1)[..., None], -1) - u)[..., 0] < 1e-5
        assert got.shape == want.shape and got.max() < levels and got.min() >= 0
        assert (got[:50] == levels - 1).all()
        assert ((got == want) | near).all() and (got == want).mean() > 0.99
        np.testing.assert_array_equal(jitted, got)


def test_generation_is_chunked_with_state_carried_and_reports_progress():
    model = model_for(8, 8, output="categorical", levels=16)
    prime = np.random.default_rng(1).normal(scale=0.3, size=40).astype("float32")
    seen = []
    gen = Generator(model, seed=SEED)
    window, _ = gen.prime(prime)
    chunked = gen.free_run(window, 30, chunk_steps=8, progress=lambda d, n, s: seen.append((d, n)))
    assert chunked.shape == (1, 30 * 8)
    window, _ = gen.prime(prime)
    whole = gen.free_run(window, 30, chunk_steps=30)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert seen == [(8, 30), (16, 30), (24, 30), (30, 30)]


def test_a_prime_gives_the_steps_whose_targets_lie_inside_it():
    assert Framing(16, 16).steps(10) == 0
    assert Framing(16, 16).steps(31) == 0
    assert Framing(16, 16).steps(32) == 1
    assert Framing(16, 1).steps(47) == 31
    assert Framing(10, 4).steps(57) == 11


def test_stream_n_draws_what_stream_n_of_a_wider_run_draws():
    """Draws are indexed by stream: one stream alone generates what the first stream
    of a 3-stream run with the same prime does (temperature 1, a tiered model)."""
    model = model_for(8, 8, units=(16,), predictor_units=[12], input_embedding=3, output="categorical", levels=16)
    prime = np.random.default_rng(6).normal(scale=0.3, size=(1, 40)).astype("float32")
    one = generated(model, prime, 8)
    three = generated(model, np.repeat(prime, 3, axis=0), 8)
    np.testing.assert_allclose(three[0], one[0], atol=1e-6)
    assert not np.allclose(three[1], one[0])  # the same prime and maths, but stream 1's draws
