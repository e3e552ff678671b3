"""Categorical heads and tiered models: quantisation, training in bits, sampled
generation of a chord, the framing of tiers, evaluation, and bad settings."""

import csv

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import chord, tiny_sets, write_pcm16
from speechgen.cli import main
from speechgen.config import load_config
from speechgen.data.quantise import bin_edges, class_values, dequantise, quantise
from speechgen.errors import UsageError
from speechgen.model import SpeechRNN, load_model
from speechgen.train import train
from test_train import FREQS, quiet, spectral_share


# --- quantisation against numeric references ---

def test_mulaw_matches_the_g711_formula_at_known_points():
    # F(x) = sign(x) ln(1 + 255 |x|) / ln 256, written out by hand for mu = 255.
    for x, fx in [(0.5, 0.8757598), (0.01, 0.2285940), (-0.25, -0.7521660), (1.0, 1.0)]:
        # class = floor((F(x) + 1) / 2 * 256)
        assert quantise(np.array([x]), 256, "mulaw")[0] == min(255, int(np.floor((fx + 1) / 2 * 256)))
    assert quantise(np.array([0.0]), 256, "mulaw")[0] == 128
    assert quantise(np.array([-1.0, 1.0, -7.0, 7.0]), 256, "mulaw").tolist() == [0, 255, 0, 255]


@pytest.mark.parametrize("scheme", ["mulaw", "linear"])
@pytest.mark.parametrize("levels", [2, 16, 256, 65536])
def test_round_trips(scheme, levels):
    classes = np.arange(levels)
    # Every class's value quantises back to that class.
    np.testing.assert_array_equal(quantise(dequantise(classes, levels, scheme), levels, scheme), classes)
    x = np.linspace(-1, 1, 20001)
    q = quantise(x, levels, scheme)
    error = np.abs(dequantise(q, levels, scheme) - x)
    edges = np.clip(bin_edges(levels, scheme), -1, 1)
    # Each sample lies in its class's bin, so within one bin width of the class value.
    assert np.all((edges[q] <= x + 1e-6) & (x <= edges[q + 1] + 1e-6))
    assert np.all(error <= (edges[q + 1] - edges[q]) + 1e-6)
    if scheme == "linear":  # linear: the value is the bin's centre
        assert error.max() <= 1 / levels + 1e-6
    assert np.all(np.diff(class_values(levels, scheme)) > 0)


def test_linear_bins_are_equal_and_mulaw_bins_are_fine_near_zero():
    np.testing.assert_allclose(np.diff(class_values(256, "linear")), 2 / 256, rtol=1e-5)
    steps = np.diff(class_values(256, "mulaw"))
    assert steps[127] < steps[0] / 100  # around zero, bins ~ 1/255 as wide as at full scale


# --- models ---

def categorical_sets(**kw):
    values = dict(window=8, hop=8, seq_len=16, batch_size=8, units="[32]", output="categorical", levels=64,
                  predictor_units="[32,32]", learning_rate=0.01, epochs=3, patience=0)
    values.update(kw)
    return tiny_sets(**values)


def test_tiered_model_stepped_frame_by_frame_equals_the_full_sequence():
    keras.utils.set_random_seed(1)
    model = SpeechRNN(window=8, hop=8, units=[12], batch_size=2, output="categorical", levels=16,
                      predictor_units=[10, 6], input_embedding=3)
    x = np.random.default_rng(0).normal(scale=0.3, size=(2, 9, 15)).astype("float32")
    whole = model(x).numpy()
    assert whole.shape == (2, 9, 8, 16)
    model.reset_rnn_states()
    steps = np.concatenate([model(x[:, t : t + 1]).numpy() for t in range(9)], axis=1)
    np.testing.assert_allclose(steps, whole, atol=1e-5)
    # Causal within a frame: sample j's logits do not depend on samples j and later.
    model.reset_rnn_states()
    changed = x.copy()
    changed[:, :, 8 + 3 :] += 0.5  # samples 4.. of each frame (the lookahead 3..6)
    other = model(changed).numpy()
    np.testing.assert_allclose(other[:, :, :4], whole[:, :, :4], atol=1e-6)
    assert not np.allclose(other[:, :, 4:], whole[:, :, 4:], atol=1e-4)


@pytest.mark.parametrize("window, k", [(8, 8), (8, 5)])
def test_embedded_predictor_input_is_the_embedding_of_every_window(window, k):
    """The model embeds each input sample once and takes windows of the embeddings; the
    predictor's input layer must see what embedding every sample's own window of ``k``
    samples gives (the plain formulation, built here from the model's own layers)."""
    from speechgen.model.model import predictor_windows

    keras.utils.set_random_seed(2)
    model = SpeechRNN(window=window, hop=8, units=[6], batch_size=2, output="categorical", levels=16,
                      predictor_units=[10], predictor_window=k, input_embedding=3)
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 5, window + 7)).astype("float32")
    probe = keras.Model(model.input, model.get_layer("predictor_input").output)
    classes = quantise(predictor_windows(x, window, 8, k).numpy(), 16, "mulaw")  # (2, 5, 8, k)
    embedded = model.get_layer("input_embedding")(classes).numpy().reshape(2, 5, 8, k * 3)
    want = model.get_layer("predictor_input")(embedded).numpy()
    np.testing.assert_allclose(probe(x).numpy(), want, atol=1e-6)
    # Distinct windows: sample j's reads positions window - k + j .. window + j - 1.
    assert (classes[..., 1:, :-1] == classes[..., :-1, 1:]).all() and not (classes[..., 1:, :] == classes[..., :-1, :]).all()


def test_save_load_keeps_the_head_and_tiers(tmp_path):
    keras.utils.set_random_seed(1)
    model = SpeechRNN(window=8, hop=8, units=[12], batch_size=1, output="categorical", levels=16,
                      quantisation="linear", predictor_units=[10], input_embedding=3)
    x = np.random.default_rng(0).normal(scale=0.3, size=(1, 3, 15)).astype("float32")
    expected = model(x).numpy()
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert (loaded.head.kind, loaded.head.levels, loaded.head.quantisation) == ("categorical", 16, "linear")
    assert loaded.predictor_units == [10] and loaded.input_embedding == 3
    np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("tiered, emphasis", [(True, 0.0), (False, 0.0), (True, 0.85)],
                         ids=["tiered", "flat", "tiered-pre-emphasis"])
def test_a_categorical_model_overfits_a_chord_and_sampling_at_t1_plays_it(tmp_path, tiered, emphasis):
    rate = 4000
    data = write_pcm16(tmp_path / "chord.wav", rate, chord(rate, 30))
    sets = categorical_sets(epochs=12, levels=256) if tiered else categorical_sets(
        window=16, hop=1, seq_len=50, predictor_units="[]", units="[48]", epochs=6, max_batches=60, levels=256
    )
    sets += [f"pre_emphasis={emphasis}"]
    result = train(data, tmp_path / "run", load_config([], sets), verbose=0, log=quiet)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    bits = [float(r["val_bits"]) for r in rows]
    assert bits[-1] < 0.5 * bits[0], bits
    test = result.summary["splits_mse"]["test"]["bits"]
    assert test["model"] < test["histogram"] - 2  # far better than ignoring the past
    out = tmp_path / "gen.wav"
    r = CliRunner().invoke(main, ["sample", str(tmp_path / "run" / "model.keras"), "--out", str(out),
                                  "--seconds", "3", "--temperature", "1"])
    assert r.exit_code == 0, r.output
    from speechgen.data.audio import read_audio

    x = read_audio(out).read()
    assert spectral_share(x, rate, FREQS) >= 0.70
    assert 0.1 < np.sqrt(np.mean(x[-rate // 2 :] ** 2)) < 0.8  # alive, not saturated
    # At the training level: a pre-emphasised model's output is de-emphasised when
    # written (left emphasised, this chord would come out at about half its level).
    level = np.sqrt(np.mean(x[-rate:] ** 2)) / np.sqrt(np.mean(read_audio(data).read() ** 2))
    assert 0.7 < level < 1.4, level
    if emphasis:
        # The quality measures judge audio, not the tilted model units: the held-out
        # reference they see is the test split's own samples.
        from speechgen.data.corpus import reopen_corpus
        from speechgen.measures.drift import free_running_report

        model = load_model(tmp_path / "run" / "model.keras")
        corpus = reopen_corpus(model.train_config)
        report = free_running_report(model, corpus, seconds=1, primes=2)
        np.testing.assert_allclose(report["held_out"][0], corpus.splits["test"][0].read(), atol=1e-5)
        assert report["quality"]["q"] is not None and np.isfinite(report["quality"]["q"])


def test_history_and_evaluate_report_bits_per_sample(tmp_path, chord_wav):
    run = tmp_path / "run"
    train(chord_wav, run, load_config([], categorical_sets()), verbose=0, log=quiet)
    rows = list(csv.DictReader(open(run / "history.csv")))
    for r in rows:  # bits = nats / ln 2 (no L2 here)
        np.testing.assert_allclose(float(r["bits"]), float(r["loss"]) / np.log(2), rtol=1e-4)
        np.testing.assert_allclose(float(r["val_bits"]), float(r["val_loss"]) / np.log(2), rtol=1e-4)
    r = CliRunner().invoke(main, ["evaluate", str(run / "model.keras")])
    assert r.exit_code == 0, r.output
    assert "model bits/sample" in r.output and "LPC bits" in r.output
    import json

    r = CliRunner().invoke(main, ["evaluate", str(run / "model.keras"), "--json"])
    valid = json.loads(r.output)["splits"]["valid"]
    assert set(valid["bits"]) == {"model", "histogram", "lpc"}
    # The best epoch's validation bits are what evaluate measures on the saved model.
    best = min(float(r["val_bits"]) for r in rows)
    assert valid["bits"]["model"] == pytest.approx(best, rel=2e-3)



def test_a_training_step_computes_the_cross_entropy_once_and_bits_are_its_mean(monkeypatch):
    """The bits metric takes the loss's per-sample nats of the same step instead of
    computing the softmax cross-entropy again: one cross-entropy per traced train and
    test step, and the metric still equals the loss / ln 2 (no L2) and a direct count."""
    from speechgen.model import heads

    calls, traces = [], []  # cross-entropies built; loss calls (one per trace of a step)
    plain, loss_call = keras.losses.sparse_categorical_crossentropy, heads.CategoricalNats.call
    monkeypatch.setattr(keras.losses, "sparse_categorical_crossentropy",
                        lambda *a, **k: calls.append(1) or plain(*a, **k))
    monkeypatch.setattr(heads.CategoricalNats, "call", lambda *a: traces.append(1) or loss_call(*a))
    keras.utils.set_random_seed(3)
    model = SpeechRNN(window=8, hop=8, units=[6], batch_size=2, output="categorical", levels=16,
                      predictor_units=[10], input_embedding=3)
    model.compile(optimizer="adam", loss=model.head.loss(), metrics=model.head.metrics())
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2, 3, 15)).astype("float32")
    y = rng.integers(0, 16, size=(2, 3, 8)).astype("int32")
    logs = model.train_on_batch(x, y, return_dict=True)
    assert traces and len(calls) == len(traces), "the train step computed the cross-entropy more than once"
    np.testing.assert_allclose(logs["bits"], logs["loss"] / np.log(2), rtol=1e-5)
    calls.clear(), traces.clear()
    model.reset_rnn_states()
    logs = model.test_on_batch(x, y, return_dict=True)
    assert traces and len(calls) == len(traces)
    model.reset_rnn_states()
    logits = model(x)
    nats = plain(y, logits, from_logits=True).numpy()
    np.testing.assert_allclose(logs["bits"], nats.mean() / np.log(2), rtol=1e-5)
    # Without its loss (or on another tensor) the metric computes the nats itself.
    alone = heads.BitsPerSample()
    alone.update_state(y, logits)
    np.testing.assert_allclose(float(alone.result()), nats.mean() / np.log(2), rtol=1e-5)
    linked = heads.CategoricalNats()
    linked(y, logits)
    other = heads.BitsPerSample(loss=linked)
    other.update_state(y, logits * 2.0)  # not the tensor the loss saw: recomputed
    np.testing.assert_allclose(float(other.result()), plain(y, logits * 2.0, from_logits=True).numpy().mean()
                               / np.log(2), rtol=1e-5)



@pytest.mark.parametrize("sets, problem", [
    (["levels=1"], "levels must be in 2..65536"),
    (["levels=70000"], "levels must be in 2..65536"),
    (["output=softmax"], "output must be one of mse, categorical"),
    (["quantisation=alaw"], "quantisation must be one of mulaw, linear"),
    (["predictor_units=[32]", "window=8", "hop=8", "predictor_window=16"], "must not exceed window"),
    (["predictor_units=[32]", "scheduled_sampling=0.5"], "scheduled_sampling is not available for tiered"),
    (["predictor_window=4"], "needs a tiered model"),
    (["predictor_units=[32]", "input_embedding=8"], "input_embedding needs output=categorical"),
])
def test_bad_head_settings_are_one_line_errors(sets, problem):
    with pytest.raises(UsageError, match=problem):
        load_config([], tiny_sets() + sets)


def test_resuming_with_another_head_or_tiers_is_refused(tmp_path, chord_wav):
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(chord_wav), "--out", str(run), "--quiet",
                                  *[x for s in categorical_sets(epochs=1) for x in ("--set", s)]])
    assert r.exit_code == 0, r.output
    for change in ("output=mse", "levels=32", "predictor_units=[16]"):
        r = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=2", "--set", change])
        assert r.exit_code != 0 and "cannot change" in r.output and "Traceback" not in r.output, r.output


def test_negative_temperature_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(main, ["sample", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o.wav"),
                                  "--temperature", "-1"])
    assert r.exit_code == 2 and "temperature" in r.output


def test_tiered_mid_epoch_resume_equals_an_uninterrupted_run(tmp_path, chord_wav):
    from test_resume import CtrlCAt, history

    config = load_config([], categorical_sets(epochs=2, checkpoint_batches=3, input_embedding=4))
    full = tmp_path / "full"
    train(chord_wav, full, config, verbose=0, log=quiet)
    part = tmp_path / "part"
    stopped = train(chord_wav, part, config, verbose=0, log=quiet, callbacks=[CtrlCAt(epoch=1, batch=5)])
    assert stopped.interrupted
    r = CliRunner().invoke(main, ["train", "--resume", str(part), "--quiet"])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose([h[1:] for h in history(part)], [h[1:] for h in history(full)], rtol=1e-5)


def test_temperature_and_noise_belong_to_their_heads(tmp_path, chord_wav):
    categorical, mse = tmp_path / "c", tmp_path / "m"
    train(chord_wav, categorical, load_config([], categorical_sets(epochs=1)), verbose=0, log=quiet)
    train(chord_wav, mse, load_config([], tiny_sets(epochs=1)), verbose=0, log=quiet)
    out = tmp_path / "g.wav"
    for model, flags, problem in [
        (mse, ["--temperature", "1"], "--temperature is a softmax temperature of categorical models"),
        (categorical, ["--noise", "1"], "--noise is for MSE models"),
        (categorical, ["--temperature", "0", "--noise-seed", "2"], "--noise-seed only applies to random draws"),
    ]:
        r = CliRunner().invoke(main, ["sample", str(model / "model.keras"), "--out", str(out), *flags])
        assert r.exit_code == 2 and problem in r.output and "Traceback" not in r.output, r.output
        assert not out.exists()
    r = CliRunner().invoke(main, ["evaluate", str(mse / "model.keras"), "--free-running", "--seconds", "3",
                                  "--temperature", "1"])
    assert r.exit_code == 2 and "--temperature is a softmax temperature" in r.output
    # The categorical model's free-running report carries the quality score.
    import json

    plot = tmp_path / "drift.png"
    r = CliRunner().invoke(main, ["evaluate", str(categorical / "model.keras"), "--free-running", "--seconds", "3",
                                  "--primes", "2", "--json", "--plot", str(plot)])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert set(report["quality"]["fd"]) == {"model", "real", "lpc_noise", "white_noise"}
    assert report["quality"]["streams"] == 2 and plot.exists() and (tmp_path / "drift-spectrogram.png").exists()


def test_a_bare_train_uses_the_speech_recipe(tmp_path):
    """`speechgen train DATA` with no --config and no --set trains configs/speech.yaml:
    on audio too short for it, the one-line answer names that recipe's framing."""
    data = write_pcm16(tmp_path / "short.wav", 4000, chord(4000, 1))
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "batch_size 32 x seq_len 32 steps of hop 16" in r.output
    assert not (tmp_path / "run").exists()
