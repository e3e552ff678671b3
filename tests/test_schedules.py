"""Scheduled sampling, input-noise schedules and temperature (fixes for input drift)."""

import csv

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_sets
from speechgen.model import SpeechRNN
from speechgen.training.schedules import noise_sigma, sampling_probability


@pytest.mark.parametrize("schedule", ["linear", "inverse_sigmoid"])
def test_schedules_rise_to_the_configured_probability(schedule):
    p = [sampling_probability(e, 0.6, schedule, 8) for e in range(12)]
    assert p[0] == 0.0
    assert p[8] == pytest.approx(0.6) and p[11] == pytest.approx(0.6)
    assert all(b >= a for a, b in zip(p, p[1:]))  # never falls
    if schedule == "inverse_sigmoid":
        assert p[1] < 0.6 / 8  # slow start, unlike linear
    assert sampling_probability(5, 0.0, schedule, 8) == 0.0
    assert noise_sigma(0, 0.1, 0.0, 4) == 0.1 and noise_sigma(2, 0.1, 0.0, 4) == pytest.approx(0.05)
    assert noise_sigma(9, 0.1, -1, 4) == 0.1


def model(window, hop, **kw):
    keras.utils.set_random_seed(7)
    return SpeechRNN(window=window, hop=hop, units=[12], batch_size=2, scheduled_sampling=True, **kw)


@pytest.mark.parametrize("window, hop", [(8, 8), (8, 1)])
def test_with_p_1_the_model_sees_only_its_own_predictions(window, hop):
    net = model(window, hop)
    x = np.random.default_rng(0).normal(scale=0.3, size=(2, 6, window)).astype("float32")
    net(x)  # build; leaves some state
    state = [v.numpy().copy() for v in net._rnn_state_variables()]
    predictions = net(x, training=False).numpy()  # teacher-forced, from that state
    for v, s in zip(net._rnn_state_variables(), state):
        v.assign(s)
    mixed = keras.ops.convert_to_numpy(net.mix_with_own_predictions(x, 1.0))
    # The state is where it was: pass 1 does not advance it.
    for v, s in zip(net._rnn_state_variables(), state):
        np.testing.assert_allclose(v.numpy(), s)
    np.testing.assert_allclose(mixed[:, 0], x[:, 0])  # the chunk's first input stays true
    np.testing.assert_allclose(mixed[:, 1:, -hop:], predictions[:, :-1], atol=1e-6)
    np.testing.assert_allclose(mixed[:, 1:, : window - hop], x[:, 1:, : window - hop])
    same = keras.ops.convert_to_numpy(net.mix_with_own_predictions(x, 0.0))
    np.testing.assert_allclose(same, x)
    half = keras.ops.convert_to_numpy(net.mix_with_own_predictions(x, 0.5))
    swapped = ~np.isclose(half[:, 1:, -1], x[:, 1:, -1])
    assert 0 < swapped.mean() < 1


def test_training_follows_the_schedule_and_records_it(tmp_path, chord_wav):
    from speechgen.config import load_config
    from speechgen.train import train

    config = load_config([], tiny_sets(
        epochs=4, patience=0, scheduled_sampling=0.5, schedule_epochs=2,
        input_noise=0.05, input_noise_end=0.01,
    ))
    result = train(chord_wav, tmp_path / "run", config, verbose=0, log=lambda *a: None)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [float(r["sampling_p"]) for r in rows] == pytest.approx([0.0, 0.25, 0.5, 0.5])
    assert [float(r["input_noise"]) for r in rows] == pytest.approx([0.05, 0.03, 0.01, 0.01])
    test = result.summary["splits_mse"]["test"]
    assert test["model"] < test["zero"]  # it still learns


def test_temperature_noise_is_seeded_and_scaled_by_validation_rmse(tmp_path, chord_wav):
    from speechgen.cli import main
    from speechgen.model import load_model

    from speechgen.data.audio import read_audio
    from speechgen.data.corpus import Normaliser
    from speechgen.generate import Generator
    from speechgen.measures.drift import noise_scale

    run = tmp_path / "run"
    sets = [x for s in tiny_sets(epochs=2) for x in ("--set", s)]  # l2 = 0: val_loss is the pure MSE
    assert CliRunner().invoke(main, ["train", str(chord_wav), "--out", str(run), "--quiet", *sets]).exit_code == 0
    model = load_model(run / "model.keras")
    best_val_mse = min(float(r["val_loss"]) for r in csv.DictReader(open(run / "history.csv")))
    val_rmse = model.run_state["val_rmse"]
    assert val_rmse == pytest.approx(np.sqrt(best_val_mse), rel=1e-5)
    assert "val_rmse" not in model.train_config  # the run record, not a config key
    assert noise_scale(model, 0.5) == pytest.approx(0.5 * val_rmse) and noise_scale(model, 0) == 0

    def sample(name, *extra):
        r = CliRunner().invoke(main, ["sample", str(run / "model.keras"), "--out", str(tmp_path / name),
                                      "--seconds", "1", *extra])
        assert r.exit_code == 0, r.output
        return read_audio(tmp_path / name).read()

    plain, hot, hot_again, other = (sample("a.wav"), sample("b.wav", "--noise", "1"),
                                    sample("c.wav", "--noise", "1"),
                                    sample("d.wav", "--noise", "1", "--noise-seed", "5"))
    assert not np.allclose(plain, hot)
    np.testing.assert_array_equal(hot, hot_again)
    assert not np.allclose(hot, other)
    # The first generated step (40 samples) comes from the same primed state with and
    # without noise: it differs by the noise alone, std 1 x val_rmse (normalised units).
    scale = Normaliser.from_dict(model.normaliser).scale
    first_noise = (hot[:40] - plain[:40]) / scale
    assert 0.6 < first_noise.std() / val_rmse < 1.4  # 40 draws
    # The same, precisely, over 64 streams x 40 draws at temperature 0.5.
    prime = np.stack([Normaliser.from_dict(model.normaliser).apply(read_audio(chord_wav).read(o, o + 400))
                      for o in range(0, 64 * 97, 97)])
    still = Generator(model, streams=64).generate(prime, 40)
    noisy = Generator(model, streams=64, noise=noise_scale(model, 0.5), seed=1).generate(prime, 40)
    assert np.std(noisy - still) == pytest.approx(0.5 * val_rmse, rel=0.08)
    assert abs(np.mean(noisy - still)) < 0.1 * val_rmse


def test_free_running_evaluation_reports_horizons_and_stable_seconds(tmp_path, chord_wav):
    import json

    from speechgen.cli import main

    run = tmp_path / "run"
    sets = [x for s in tiny_sets(epochs=2) for x in ("--set", s)]
    assert CliRunner().invoke(main, ["train", str(chord_wav), "--out", str(run), "--quiet", *sets]).exit_code == 0
    r = CliRunner().invoke(main, ["evaluate", str(run / "model.keras"), "--free-running", "--seconds", "5",
                                  "--primes", "3", "--json", "--plot", str(tmp_path / "drift.png")])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert set(report["horizons"]) == {"1 step", "10 steps", "100 steps"}
    assert all(v > 0 for v in report["horizons"].values())
    # Stable seconds, recomputed from the report's own per-second features and ranges:
    # the seconds before the first 3 in a row with RMS or flatness out of range.
    lo_r, hi_r = report["ranges"]["rms"]
    lo_f, hi_f = report["ranges"]["flatness"]
    assert len(report["stable_seconds"]) == len(report["features"]) == 3
    for stable, f in zip(report["stable_seconds"], report["features"]):
        assert len(f["rms"]) == len(f["flatness"]) == 5
        out = [not (lo_r <= r <= hi_r and lo_f <= fl <= hi_f) for r, fl in zip(f["rms"], f["flatness"])]
        assert stable == next((i for i in range(len(out) - 2) if all(out[i : i + 3])), len(out)), (stable, out)
    assert (tmp_path / "drift.png").stat().st_size > 5000
    misuse = CliRunner().invoke(main, ["evaluate", str(run / "model.keras"), "--primes", "2"])
    assert misuse.exit_code == 2 and "--primes only applies with --free-running" in misuse.output

    def drift(*extra):
        r = CliRunner().invoke(main, ["evaluate", str(run / "model.keras"), "--free-running", "--seconds", "3",
                                      "--primes", "3", "--json", *extra])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    # --seed picks the held-out primes; --noise-seed only the noise.
    other_primes = drift("--seed", "1")
    assert other_primes["primes"] != report["primes"]
    hot, hot_other_noise = drift("--noise", "1"), drift("--noise", "1", "--noise-seed", "5")
    assert hot["primes"] == hot_other_noise["primes"] == report["primes"]
    assert hot["features"] != hot_other_noise["features"]


def test_resume_refuses_settings_it_cannot_apply(tmp_path, chord_wav):
    from speechgen.cli import main

    run = tmp_path / "run"
    sets = [x for s in tiny_sets(epochs=1) for x in ("--set", s)]
    assert CliRunner().invoke(main, ["train", str(chord_wav), "--out", str(run), "--quiet", *sets]).exit_code == 0
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=2", "--set", "dropout=0.3"])
    assert r.exit_code == 1 and "cannot change dropout when resuming" in r.output
