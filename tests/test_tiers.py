"""Two frame tiers (SampleRNN's three tiers): an upper LSTM tier (``top_units``, one step
per ``top_frame`` samples) above the frame tier and its sample-level predictor. The
compiled generator against stepped Keras sampling, stepping against one call,
causality, saving, the parameters the tier adds, training from the CLI, and the config
errors."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_sets
from speechgen.cli import main
from speechgen.config import changed_keys, load_config
from speechgen.data.framing import Framing
from speechgen.errors import UsageError
from speechgen.model import FORMAT_VERSION, SpeechRNN, load_model
from test_generate import generated, reference

PHONES = ["aa", "h#", "iy", "s"]


def three_tier(batch_size=2, phones=None, **kw):
    """window 8, hop 4, an upper tier stepping every 8 samples (ratio 2)."""
    keras.utils.set_random_seed(3)
    values = dict(window=8, hop=4, units=[12], batch_size=batch_size, output="categorical", levels=16,
                  predictor_units=[10], top_units=[14, 6], top_frame=8)
    values.update(kw)
    if phones:
        values.update(phones=PHONES, phone_context=phones, phone_embedding=3 if phones >= 3 else 0)
    return SpeechRNN(**values)


def sharpened(model, factor=8.0):
    """The model with its upsampling and output kernels scaled up: an untrained model's
    distributions are near uniform, so its draws would hardly depend on what the upper
    tier says; scaled, a generator that got the tier wrong draws other samples. (An MSE
    model's output is continuous already; a scaled linear output would diverge.)"""
    for name in ("top_upsample", "next_samples") if model.head.kind == "categorical" else ("top_upsample",):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * factor, bias])
    return model


@pytest.mark.parametrize("streams, phones, extra", [
    (1, None, dict(input_embedding=3)),
    (3, 1, {}),
    (2, 3, dict(output="mse", output_activation="linear", hoist_input=True)),
    (2, 4, {}),  # phones with their position within the phone
    (2, None, dict(top_frame=12, window=12, predictor_window=6)),
    (1, None, dict(output="mse", output_activation="tanh", top_frame=4, top_units=[6])),  # ratio 1
])
def test_compiled_generation_equals_keras_stepped_one_upper_step_at_a_time(streams, phones, extra):
    model = sharpened(three_tier(phones=phones, **extra))
    rng = np.random.default_rng(4)
    # 45 samples: steps that do not fill an upper step are left out of the prime.
    prime = rng.normal(scale=0.3, size=(streams, 45)).astype("float32")
    n_steps = 12
    ids = None
    if phones:
        ids = rng.integers(0, len(PHONES), size=(streams, Framing.of(model).steps(45) + n_steps, phones))
        ids = ids.astype("int32")
    noise = 0.05 if model.head.kind == "mse" else 0.0
    expected = reference(model, prime, n_steps, ids, noise=noise)
    got = generated(model, prime, n_steps, ids, noise=noise)
    assert got.shape == (streams, n_steps * model.hop)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_generation_of_three_tiers_equals_keras(policy):
    model = sharpened(three_tier(batch_size=1, phones=1, mixed_precision=policy))
    rng = np.random.default_rng(5)
    prime = rng.normal(scale=0.3, size=(1, 40)).astype("float32")
    ids = rng.integers(0, len(PHONES), size=(1, Framing.of(model).steps(40) + 8, 1)).astype("int32")
    # The same layers in the same 16-bit arithmetic: equal draws.
    np.testing.assert_allclose(generated(model, prime, 8, ids), reference(model, prime, 8, ids), atol=1e-5)


def test_the_upper_tier_and_its_phones_reach_the_output():
    model = three_tier(phones=1)
    x = np.random.default_rng(0).normal(scale=0.3, size=(2, 4, 11)).astype("float32")
    ids = np.zeros((2, 4, 1), np.int32)
    base = model([x, ids]).numpy()
    model.reset_rnn_states()
    # The phone of an upper step is that of its first lower step: only steps 0 and 2 count.
    other = ids.copy()
    other[:, 1] = other[:, 3] = 2
    np.testing.assert_allclose(model([x, other]).numpy(), base, atol=1e-6)
    model.reset_rnn_states()
    other[:, 2] = 2
    changed = model([x, other]).numpy()
    np.testing.assert_allclose(changed[:, :2], base[:, :2], atol=1e-6)
    assert np.abs(changed[:, 2:] - base[:, 2:]).max() > 1e-5
    # Without the upper tier's conditioning the output changes (it is wired in).
    model.reset_rnn_states()
    kernel, bias = model.get_layer("top_upsample").get_weights()
    model.get_layer("top_upsample").set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    assert np.abs(model([x, ids]).numpy() - base).max() > 1e-5
    assert "frames_and_phones" not in [l.name for l in model.layers]  # phones enter at the top only


@pytest.mark.parametrize("chunk", [2, 4])
def test_stepping_whole_upper_steps_equals_one_call(chunk):
    model = three_tier(phones=3, dropout=0.3, input_noise=0.1)
    rng = np.random.default_rng(1)
    x = rng.normal(scale=0.3, size=(2, 12, 11)).astype("float32")
    ids = rng.integers(0, len(PHONES), size=(2, 12, 3)).astype("int32")
    whole = model([x, ids]).numpy()
    model.reset_rnn_states()
    steps = [model([x[:, t : t + chunk], ids[:, t : t + chunk]]).numpy() for t in range(0, 12, chunk)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, atol=1e-5)
    # A call that ends inside an upper step (reconstruct's teacher-forced pass) is the
    # start of the whole call.
    model.reset_rnn_states()
    np.testing.assert_allclose(model([x[:, :7], ids[:, :7]]).numpy(), whole[:, :7], atol=1e-5)


def test_predictions_do_not_read_later_samples():
    model = three_tier(batch_size=1)
    framing = Framing.of(model)
    w, h = model.window, model.hop
    signal = np.random.default_rng(2).normal(scale=0.3, size=(1, w + 16 * h)).astype("float32")
    logits = model(framing.frame(signal)[0]).numpy().reshape(1, -1, 16)  # one row per target sample
    for p in (w + 5 * h + 2, w + 8 * h):  # inside a frame; where an upper step starts
        changed = signal.copy()
        changed[:, p:] += 0.5
        model.reset_rnn_states()
        other = model(framing.frame(changed)[0]).numpy().reshape(1, -1, 16)
        # Target sample i is signal[w + i]: predictions of samples at or before p agree.
        np.testing.assert_allclose(other[:, : p - w + 1], logits[:, : p - w + 1], atol=1e-6)
        assert np.abs(other[:, p - w + 1 :] - logits[:, p - w + 1 :]).max() > 1e-4
        model.reset_rnn_states()


def test_save_load_round_trip_and_the_parameters_the_tier_adds(tmp_path):
    model = three_tier(batch_size=1, phones=1, top_units=[14], input_embedding=3)
    x = np.random.default_rng(0).normal(scale=0.3, size=(1, 4, 11)).astype("float32")
    ids = np.ones((1, 4, 1), np.int32)
    expected = model([x, ids]).numpy()
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert (loaded.top_units, loaded.top_frame, loaded.top_ratio) == ([14], 8, 2)
    assert loaded.get_config()["format"] == FORMAT_VERSION == 3
    np.testing.assert_allclose(loaded([x, ids]).numpy(), expected, atol=1e-6)
    assert loaded.with_batch_size(3).count_params() == model.count_params()
    # The upper tier adds its LSTM (its frame and phones in), the upsampling Dense(r * U)
    # and U inputs of the frame tier's first LSTM; nothing else changes.
    below = SpeechRNN(window=8, hop=4, units=[12], output="categorical", levels=16, predictor_units=[10],
                      input_embedding=3, phones=PHONES)
    below_phones = 4 * 12 * len(PHONES)  # the phones left the frame tier
    upper = 4 * 14 * (8 + len(PHONES) + 14 + 1) + (14 + 1) * 2 * 12 + 4 * 12 * 12
    assert model.count_params() == below.count_params() - below_phones + upper


def test_a_three_tier_model_trains_samples_and_evaluates_from_the_cli(tmp_path, chord_wav):
    run = tmp_path / "run"
    sets = tiny_sets(window=16, hop=4, seq_len=8, batch_size=4, units="[16]", output="categorical", levels=32,
                     predictor_units="[16]", input_embedding=4, top_units="[16]", top_frame=16, epochs=1,
                     max_batches=4)
    r = CliRunner().invoke(main, ["train", str(chord_wav), "--out", str(run), "--quiet",
                                  *[x for s in sets for x in ("--set", s)]])
    assert r.exit_code == 0, r.output
    model = load_model(run / "model.keras")
    assert (model.top_units, model.top_frame, model.top_ratio) == ([16], 16, 4)
    r = CliRunner().invoke(main, ["sample", str(run / "model.keras"), "--out", str(tmp_path / "g.wav"),
                                  "--seconds", "0.1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(run / "model.keras")])
    assert r.exit_code == 0 and "model bits/sample" in r.output, r.output
    # Resuming with other tiers is refused (the key is not resumable).
    config = load_config([], [*sets, "top_units=[8]"])
    assert changed_keys(model.train_config, config) == ["top_units"]
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=2", "--set", "top_frame=8"])
    assert r.exit_code != 0 and "cannot change top_frame" in r.output and "Traceback" not in r.output, r.output


TIERED = ["window=16", "hop=4", "seq_len=8", "predictor_units=[16]", "output=categorical"]


@pytest.mark.parametrize("sets, problem", [
    (["top_units=[8]", "top_frame=8"], "top_units needs a tiered model"),
    ([*TIERED, "top_units=[8]"], "top_units needs top_frame"),
    ([*TIERED, "top_frame=8"], "top_frame needs an upper tier"),
    ([*TIERED, "top_units=[8]", "top_frame=10"], r"top_frame \(10\) must be a multiple of hop \(4\)"),
    ([*TIERED, "top_units=[8]", "top_frame=32"], r"top_frame \(32\) must not exceed window \(16\)"),
    ([*TIERED, "top_units=[8]", "top_frame=12"], r"seq_len \(8\) must be a multiple of top_frame / hop \(3\)"),
    ([*TIERED, "top_units=[0]", "top_frame=8"], "top_units must be positive sizes"),
    ([*TIERED, "top_units=[8]", "top_frame=-4"], "top_frame must not be negative"),
    ([*TIERED, "top_units=[8.5]", "top_frame=8"], "top_units must be list of integers"),
])
def test_bad_upper_tier_settings_are_one_line_errors(sets, problem):
    with pytest.raises(UsageError, match=problem) as err:
        load_config([], tiny_sets() + sets)
    assert "\n" not in str(err.value)


def test_framing_of_a_three_tier_model_primes_whole_upper_steps():
    framing = Framing.of(three_tier())
    assert (framing.ratio, framing.lookahead) == (2, 3)
    assert framing.steps(45) == 9 and framing.prime_steps(45) == 8
    assert Framing(16, 1).prime_steps(47) == 31  # without an upper tier: every step
    config = load_config([], tiny_sets() + [*TIERED, "top_units=[8]", "top_frame=16"])
    assert Framing.of(config).ratio == 4
