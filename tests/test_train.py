"""Training end to end on a chord: it learns, it generates the chord, the run is complete."""

import csv
import json

import numpy as np
import pytest

from conftest import chord, tiny_sets, write_pcm16
from speechgen.data.audio import read_audio
from speechgen.config import load_config
from speechgen.errors import SpeechgenError
from speechgen.sample import sample_to_wav
from speechgen.train import train

FREQS = (220.0, 330.0, 550.0)


def quiet(*_):
    pass


def spectral_share(x, rate, freqs, tolerance_hz=5.0):
    """Share of the power of ``x`` within ``tolerance_hz`` of ``freqs`` (Hann window)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    near = np.zeros(len(f), bool)
    for fr in freqs:
        near |= np.abs(f - fr) <= tolerance_hz
    return spectrum[near].sum() / spectrum.sum()


def test_spectral_share_tells_a_chord_from_noise():
    rate = 4000
    assert spectral_share(chord(rate, 2), rate, FREQS) > 0.99
    noise = np.random.default_rng(0).normal(size=2 * rate)
    assert spectral_share(noise, rate, FREQS) < 0.05


def test_overfit_a_chord_then_generate_it(tmp_path):
    rate = 4000
    data = write_pcm16(tmp_path / "chord.wav", rate, chord(rate, 40))
    config = load_config([], tiny_sets(units="[64,64]", epochs=30))
    result = train(data, tmp_path / "run", config, verbose=0, log=quiet)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    losses = [float(r["loss"]) for r in rows]
    assert losses[0] / min(losses) >= 100, losses
    mse = result.summary["splits_mse"]["test"]
    assert mse["model"] < 0.01 * min(mse["zero"], mse["persistence"])

    info = sample_to_wav(tmp_path / "run" / "model.keras", tmp_path / "gen.wav", seconds=3.0)
    generated = read_audio(tmp_path / "gen.wav")
    assert generated.rate == rate and len(generated) == 3 * rate
    assert info["real_time_factor"] > 0
    x = generated.read()
    assert spectral_share(x, rate, FREQS) >= 0.70
    # Still alive at the end: not decayed to silence, not blown up.
    rms_end = np.sqrt(np.mean(x[-rate // 2 :] ** 2))
    assert 0.15 < rms_end < 0.6


def test_run_directory_is_complete_and_consistent(tmp_path, chord_wav):
    config = load_config([], tiny_sets(epochs=2))
    result = train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet)
    run = tmp_path / "run"
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(
        ["model.keras", "checkpoint.keras", "config.yaml", "history.csv", "curves.png", "summary.json"]
    )
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(float(r["seconds"]) > 0 and np.isfinite(float(r["val_loss"])) for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["parameters"] == result.summary["parameters"]
    assert set(summary["splits_mse"]) == {"train", "valid", "test"}
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert summary["best_epoch"] == int(best["epoch"])
    assert load_config([run / "config.yaml"]) == config


def test_keep_epochs_keeps_every_nth_epoch_and_each_can_be_scored(tmp_path, chord_wav):
    from click.testing import CliRunner

    from speechgen.cli import main
    from speechgen.model import load_model

    config = load_config([], tiny_sets(epochs=4, patience=0, keep_epochs=2))
    train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet)
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "epochs").iterdir()) == ["epoch-002.keras", "epoch-004.keras"]
    rows = list(csv.DictReader(open(run / "history.csv")))
    last, second = load_model(run / "epochs" / "epoch-004.keras"), load_model(run / "epochs" / "epoch-002.keras")
    # The last kept epoch is the checkpoint's weights; an earlier one differs from them.
    checkpoint = load_model(run / "checkpoint.keras")
    for a, b in zip(last.get_weights(), checkpoint.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(second.get_weights(), checkpoint.get_weights()))
    # Like model.keras: no position in the run, and that epoch's own validation RMSE.
    assert last.run_state.get("epochs_done") is None
    size, best_size = (run / "epochs" / "epoch-004.keras").stat().st_size, (run / "model.keras").stat().st_size
    assert abs(size - best_size) < 0.05 * best_size  # no optimizer slots, as model.keras
    assert best_size < (run / "checkpoint.keras").stat().st_size  # (which the checkpoint has)
    assert last.run_state["val_rmse"] == pytest.approx(float(rows[3]["val_loss"]) ** 0.5, rel=1e-5)
    assert second.run_state["val_rmse"] == pytest.approx(float(rows[1]["val_loss"]) ** 0.5, rel=1e-5)
    scored = CliRunner().invoke(main, ["evaluate", str(run / "epochs" / "epoch-002.keras"), "--json"])
    assert scored.exit_code == 0, scored.output
    valid = json.loads(scored.output)["splits"]["valid"]["model"]
    assert valid == pytest.approx(float(rows[1]["val_loss"]), rel=1e-3)
    with pytest.raises(SpeechgenError, match="keep_epochs must not be negative"):
        load_config([], ["keep_epochs=-1"])


def test_an_existing_run_is_never_overwritten(tmp_path, chord_wav):
    config = load_config([], tiny_sets(epochs=1))
    train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet)
    before = (tmp_path / "run" / "model.keras").read_bytes()
    with pytest.raises(SpeechgenError, match="already holds files.*--force"):
        train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet)
    assert (tmp_path / "run" / "model.keras").read_bytes() == before


def test_bad_data_leaves_no_run_directory(tmp_path):
    short = write_pcm16(tmp_path / "short.wav", 4000, chord(4000, 1))
    config = load_config([], tiny_sets())
    with pytest.raises(SpeechgenError, match="too short"):
        train(short, tmp_path / "run", config, verbose=0, log=quiet)
    assert not (tmp_path / "run").exists()


class PoisonAtEpoch(__import__("keras").callbacks.Callback):
    """Sets the output weights to NaN at the start of one epoch: a divergence on cue."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.get_layer("next_samples").kernel
            kernel.assign(kernel * float("nan"))


def test_divergence_stops_on_nan_and_keeps_the_best_model(tmp_path, chord_wav):
    run = tmp_path / "run"
    config = load_config([], tiny_sets(epochs=6))
    result = train(chord_wav, run, config, verbose=0, log=quiet, callbacks=[PoisonAtEpoch(2)])
    assert result.stopped_by_nan and result.summary["stopped"] == "nan"
    assert result.summary["epochs"] == 3  # the NaN epoch is recorded, then training stops
    assert result.summary["best_epoch"] in (1, 2)
    from speechgen.model import load_model

    best = load_model(run / "model.keras")
    assert all(np.isfinite(w).all() for w in best.get_weights())
    assert result.summary["splits_mse"]["test"]["model"] < result.summary["splits_mse"]["test"]["zero"]
    from speechgen.training.rundir import nan_message

    message = nan_message(result, run)
    assert f"epoch {result.summary['best_epoch']}" in message and "learning_rate" in message


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_its_model_generates(tmp_path, chord_wav, policy):
    config = load_config([], tiny_sets(epochs=2, mixed_precision=policy))
    result = train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet)
    test = result.summary["splits_mse"]["test"]
    assert np.isfinite(test["model"]) and test["model"] < test["zero"]
    info = sample_to_wav(tmp_path / "run" / "model.keras", tmp_path / "g.wav", seconds=0.5)
    assert info["seconds"] == pytest.approx(0.5)


def test_hoisted_input_with_jit_compile_trains(tmp_path, chord_wav):
    config = load_config([], tiny_sets(epochs=2, hoist_input="true", jit_compile="on"))
    assert config.hoist_input == "on" and config.jit_compile == "on"  # YAML's true reads as on
    result = train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet)
    test = result.summary["splits_mse"]["test"]
    assert np.isfinite(test["model"]) and test["model"] < test["zero"]
    from speechgen.model import load_model

    assert load_model(tmp_path / "run" / "model.keras").hoist_input


def test_hoist_input_auto_hoists_on_a_cpu_and_off_keeps_the_plain_lstm(tmp_path):
    """The default, auto: the first layer is hoisted where TensorFlow sees no GPU (this
    machine), the cuDNN-eligible keras LSTM where it sees one; on and off as said, old
    configs' booleans read as on and off."""
    import keras
    import tensorflow as tf

    from speechgen.data.corpus import Normaliser
    from speechgen.model import build_model
    from speechgen.model.model import hoists_input

    assert load_config([], []).hoist_input == "auto"
    assert [load_config([], [f"hoist_input={v}"]).hoist_input for v in ("on", "off", "true", "false")] == [
        "on", "off", "on", "off"]
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert hoists_input("auto") is not gpu and hoists_input("on") and not hoists_input("off")
    for setting, hoisted in (("auto", not gpu), ("off", False), ("on", True)):
        config = load_config([], tiny_sets(hoist_input=setting))
        model = build_model(config, 4000, Normaliser("minmax", 0.0, 1.0), "x.wav")
        assert model.hoist_input is hoisted
        assert isinstance(model.get_layer("lstm_0"), keras.layers.LSTM) is not hoisted
        assert ("lstm_0_input" in [layer.name for layer in model.layers]) is hoisted


def test_state_resets_fire_during_fit(tmp_path, monkeypatch):
    """``fit`` never resets LSTM state by itself; ResetStates zeroes it at each epoch
    start, before validation and in each row where a new utterance starts. With l2 = 0
    the best epoch's val_loss is then exactly the validation MSE that ``evaluate``
    (which does its own resets) gives the saved model. With the callback's resets taken
    away, validation starts from the training streams' state and carries state from one
    utterance into the next, and the two differ."""
    from fixtures import chord_corpus
    from speechgen.training.callbacks import ResetStates

    # Short utterances of four different chords: many utterance starts in every row.
    corpus = chord_corpus(tmp_path / "c", 4000, 8, (0.3, 0.6), freqs=lambda u: (110.0 * (1 + u % 4), 330.0, 550.0))
    config = load_config([], [
        "window=16", "hop=1", "seq_len=25", "batch_size=4", "units=[16]", "l2=0", "epochs=2", "patience=0",
        "learning_rate=0.01", "split=[0.5,0.5,0]",
    ])

    def val_mse_in_fit_and_in_evaluate(name):
        summary = train(corpus, tmp_path / name, config, verbose=0, log=quiet).summary
        return summary["best_val_loss"], summary["splits_mse"]["valid"]["model"]

    in_fit, evaluated = val_mse_in_fit_and_in_evaluate("run")
    assert in_fit == pytest.approx(evaluated, rel=1e-4)
    monkeypatch.setattr(ResetStates, "on_epoch_begin", lambda self, epoch, logs=None: None)
    monkeypatch.setattr(ResetStates, "on_test_begin", lambda self, logs=None: None)
    monkeypatch.setattr(ResetStates, "_rows", lambda self, fresh, batch: None)
    in_fit, evaluated = val_mse_in_fit_and_in_evaluate("no-resets")
    assert abs(in_fit / evaluated - 1) > 1e-3, (in_fit, evaluated)


def test_joined_utterances_train_and_evaluate_as_one_stream(tmp_path):
    """``utterances: joined`` plays a split's utterances back to back with state carried
    across them, in fit and in ``evaluate`` alike: the best epoch's val_loss equals
    evaluate's valid MSE of the saved model, and scoring the same model with utterances
    apart (each from zero state) gives another figure, so the setting reaches both."""
    from fixtures import chord_corpus
    from speechgen.data.corpus import reopen_corpus
    from speechgen.evaluate import evaluate_model
    from speechgen.model.saving import load_model

    corpus = chord_corpus(tmp_path / "c", 4000, 8, (0.3, 0.6), freqs=lambda u: (110.0 * (1 + u % 4), 330.0, 550.0))
    config = load_config([], [
        "window=16", "hop=1", "seq_len=25", "batch_size=4", "units=[16]", "l2=0", "epochs=2", "patience=0",
        "learning_rate=0.01", "split=[0.5,0.5,0]", "utterances=joined",
    ])
    result = train(corpus, tmp_path / "run", config, verbose=0, log=quiet)
    assert result.summary["best_val_loss"] == pytest.approx(result.summary["splits_mse"]["valid"]["model"], rel=1e-4)
    model = load_model(tmp_path / "run" / "model.keras")
    assert model.train_config["utterances"] == "joined"
    data = reopen_corpus(model.train_config)
    joined = evaluate_model(model, data, ("valid",))["valid"]["model"]
    assert joined == pytest.approx(result.summary["best_val_loss"], rel=1e-4)
    model.train_config = {**model.train_config, "utterances": "separate"}
    apart = evaluate_model(model, data, ("valid",))["valid"]["model"]
    assert abs(apart / joined - 1) > 1e-3, (apart, joined)
