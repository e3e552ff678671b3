"""The model: state carry, save/load, batch-size copies, the frame16k parameter count."""

import keras
import numpy as np

from speechgen.config import load_config
from speechgen.data.corpus import Normaliser
from speechgen.model import SpeechRNN, build_model, load_model
from speechgen.model.model import copy_to_hoisted


def tiny(batch_size=2, **kw):
    keras.utils.set_random_seed(1)
    args = dict(window=6, hop=3, units=[8, 5], batch_size=batch_size, sample_rate=8000,
                normaliser={"kind": "meanrange", "center": 0.0, "scale": 1.0})
    args.update(kw)
    return SpeechRNN(**args)


def test_stateful_step_by_step_equals_full_sequence():
    model = tiny()
    x = np.random.default_rng(0).normal(size=(2, 7, 6)).astype("float32")
    full = model(x).numpy()
    model.reset_rnn_states()
    steps = np.concatenate([model(x[:, t : t + 1]).numpy() for t in range(7)], axis=1)
    np.testing.assert_allclose(steps, full, atol=1e-6)
    # And chunks of a longer sequence carry state: 3 + 4 steps == 7 steps.
    model.reset_rnn_states()
    chunks = np.concatenate([model(x[:, :3]).numpy(), model(x[:, 3:]).numpy()], axis=1)
    np.testing.assert_allclose(chunks, full, atol=1e-6)
    # Without a reset the state carries over, so the same input gives another answer.
    assert not np.allclose(model(x).numpy(), full, atol=1e-4)
    model.reset_rnn_states()
    np.testing.assert_allclose(model(x).numpy(), full, atol=1e-6)


def test_save_load_round_trip(tmp_path):
    model = tiny(dropout=0.1, input_noise=0.05, output_activation="linear", l2=1e-4,
                 train_config={"seq_len": 4, "data": "/x.wav"})
    x = np.random.default_rng(1).normal(size=(2, 5, 6)).astype("float32")
    before = model(x).numpy()
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded) is SpeechRNN
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(x).numpy(), before, atol=1e-6)


def test_batch_size_copy_shares_weights_not_state():
    model = tiny(batch_size=4)
    x = np.random.default_rng(2).normal(size=(4, 5, 6)).astype("float32")
    model.reset_rnn_states()
    full = model(x).numpy()
    one = model.with_batch_size(1)
    assert one.batch_size == 1
    np.testing.assert_allclose(one(x[2:3]).numpy(), full[2:3], atol=1e-6)


def test_frame16k_preset_has_the_write_ups_parameter_count():
    config = load_config(["frame16k"])
    model = build_model(config, 16000, Normaliser("meanrange", 0.0, 1.0), "data.wav")
    assert model.count_params() == 55_223_200
    # Three LSTM layers of 600 (the first hoisted on a CPU: hoist_input auto).
    assert [l.cell.units for l in model.layers if isinstance(l, keras.layers.RNN)] == [600] * 3
    assert all(l.stateful for l in model.layers if isinstance(l, keras.layers.LSTM))


def test_mixed_bfloat16_computes_in_16_bits_with_a_float32_output(tmp_path):
    model = tiny(mixed_precision="mixed_bfloat16")
    lstm = model.get_layer("lstm_0")
    assert lstm.compute_dtype == "bfloat16" and lstm.cell.kernel.dtype == "float32"
    x = np.random.default_rng(5).normal(size=(2, 4, 6)).astype("float32")
    y = model(x)
    assert str(y.dtype) in ("float32", "<dtype: 'float32'>")
    reference = tiny()  # same seed and initial weights, float32 throughout
    reference.set_weights(model.get_weights())
    # bfloat16 keeps 8 bits of mantissa: agree to a few parts in a hundred.
    np.testing.assert_allclose(y.numpy(), reference(x).numpy(), atol=3e-2)
    model.save(tmp_path / "m.keras")
    assert load_model(tmp_path / "m.keras").get_layer("lstm_0").compute_dtype == "bfloat16"


def test_hoisted_input_projection_equals_the_plain_lstm():
    phones = ["aa", "h#", "iy"]
    plain = tiny(phones=phones, phone_context=3, phone_embedding=2)
    hoisted = tiny(phones=phones, phone_context=3, phone_embedding=2, hoist_input=True)
    assert hoisted.count_params() == plain.count_params()
    assert isinstance(hoisted.get_layer("lstm_0"), keras.layers.RNN)
    assert not isinstance(hoisted.get_layer("lstm_0"), keras.layers.LSTM)
    # Initialised like Keras' LSTM: unit_forget_bias.
    np.testing.assert_array_equal(hoisted.get_layer("lstm_0").cell.bias.numpy(), [0] * 8 + [1] * 8 + [0] * 16)
    copy_to_hoisted(plain, hoisted)
    rng = np.random.default_rng(7)
    x = [rng.normal(size=(2, 7, 6)).astype("float32"), rng.integers(0, 3, size=(2, 7, 3)).astype("int32")]
    full = plain(x).numpy()
    np.testing.assert_allclose(hoisted(x).numpy(), full, atol=1e-5)
    hoisted.reset_rnn_states()
    steps = np.concatenate([hoisted([x[0][:, t : t + 1], x[1][:, t : t + 1]]).numpy() for t in range(7)], axis=1)
    np.testing.assert_allclose(steps, full, atol=1e-5)
    # The state helpers find the custom RNN: fresh rows start again, others carry on.
    assert len(hoisted._rnn_state_variables()) == 4
    hoisted.reset_rnn_rows(np.array([True, False]))
    again = hoisted(x).numpy()
    np.testing.assert_allclose(again[0], full[0], atol=1e-5)
    assert not np.allclose(again[1], full[1], atol=1e-4)
    one = hoisted.with_batch_size(1)
    np.testing.assert_allclose(one([x[0][1:], x[1][1:]]).numpy(), full[1:], atol=1e-5)


def test_frame16k_with_hoist_input_has_the_same_parameter_count():
    config = load_config(["frame16k"], ["hoist_input=true"])
    model = build_model(config, 16000, Normaliser("meanrange", 0.0, 1.0), "data.wav")
    assert model.hoist_input and model.count_params() == 55_223_200
    assert model.get_layer("lstm_0_input").kernel.shape == (16000, 2400)


def test_hoisted_phone_conditioned_save_load_round_trip(tmp_path):
    model = tiny(phones=["aa", "s"], phone_context=1, l2=1e-4, dropout=0.1, hoist_input=True)
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(2, 5, 6)).astype("float32"), rng.integers(0, 2, size=(2, 5, 1)).astype("int32")]
    before = model(x).numpy()
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded) is SpeechRNN and loaded.hoist_input
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(x).numpy(), before, atol=1e-6)
