"""Runs survive interruption: --resume, SIGKILL mid-epoch, Ctrl-C."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import chord, tiny_sets, write_pcm16
from speechgen.cli import main


def sets(**kw):
    return [x for s in tiny_sets(**kw) for x in ("--set", s)]


def history(run):
    with open(run / "history.csv") as f:
        return [(int(r["epoch"]), float(r["loss"]), float(r["val_loss"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_pcm16(tmp_path_factory.mktemp("resume") / "chord.wav", 4000, chord(4000, 30))


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(run), "--quiet", *sets(epochs=4, patience=0)])
    assert r.exit_code == 0, r.output
    return history(run)


def test_resume_continues_the_history_and_matches_an_uninterrupted_run(data, uninterrupted, tmp_path):
    run = tmp_path / "run"
    first = CliRunner().invoke(main, ["train", str(data), "--out", str(run), "--quiet", *sets(epochs=2, patience=0)])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet", "--set", "epochs=4"])
    assert second.exit_code == 0, second.output
    assert "resuming" in second.output and "epoch 3 of 4" in second.output
    rows = history(run)
    assert [r[0] for r in rows] == [1, 2, 3, 4]  # no gap, no repeat
    # Same data order, same weights and optimizer state: the same losses.
    np.testing.assert_allclose([r[1:] for r in rows], [r[1:] for r in uninterrupted], rtol=2e-3)


def test_sigkill_mid_epoch_then_resume(data, uninterrupted, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "speechgen.cli", "train", str(data), "--out", str(run), "--quiet",
           *sets(epochs=4, patience=0)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run / "history.csv").exists() and len(history(run)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    time.sleep(0.1)  # into epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(history(run))
    assert 2 <= done < 4
    from speechgen.model import load_model

    load_model(run / "checkpoint.keras")  # never a broken file
    load_model(run / "model.keras")
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    rows = history(run)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    np.testing.assert_allclose([r[1:] for r in rows], [r[1:] for r in uninterrupted], rtol=2e-3)
    assert not list(run.glob(".*tmp*"))  # no temporaries left by the killed save


def test_ctrl_c_saves_and_says_how_to_resume(data, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "speechgen.cli", "train", str(data), "--out", str(run), "--quiet",
           *sets(epochs=50, patience=0)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoint.keras").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert f"speechgen train --resume {run}" in err and "Traceback" not in err
    assert (run / "checkpoint.keras").exists()
    more = f"epochs={len(history(run)) + 1}"
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet", "--set", more])
    assert resumed.exit_code == 0, resumed.output


def test_resume_refuses_what_it_cannot_do(data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["train", "--resume", str(empty)])
    assert r.exit_code == 1 and "checkpoint.keras: no checkpoint to resume from" in r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "no such run directory" in r.output
    r = CliRunner().invoke(main, ["train", str(data), "--resume", str(empty)])
    assert r.exit_code == 2 and "takes no DATA" in r.output
    r = CliRunner().invoke(main, ["train", str(data)])
    assert r.exit_code == 2 and "needs DATA and --out" in r.output


def test_resume_of_an_early_stopped_run_says_how_to_go_on(tmp_path):
    from speechgen.callbacks import RunRecorder
    from speechgen.train import read_history

    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 30))
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(run), "--quiet", *sets(epochs=3, patience=1)])
    assert r.exit_code == 0, r.output
    rows = read_history(run / "history.csv")
    # Make the history say "no improvement since epoch 1" (as an early stop leaves it).
    (run / "history.csv").write_text(
        "epoch,loss,val_loss,seconds,sampling_p,input_noise,learning_rate\n"
        + "".join(f"{i},{rows[0]['loss']},{0.1 * i},1.0,0,0,0.01\n" for i in (1, 2, 3))
    )
    assert RunRecorder(run, rows=read_history(run / "history.csv"), patience=1).should_stop()
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=10"])
    assert r.exit_code == 1 and "stopped early at epoch 3 (best epoch 1)" in r.output
    assert "patience=3" in r.output


def test_resume_restores_random_state_and_the_learning_rate_schedule(data, tmp_path):
    """With dropout, input noise and scheduled sampling drawing random numbers, and a
    cosine learning rate, a run stopped after epoch 2 and resumed equals the same run
    uninterrupted, to float precision."""
    import keras

    from speechgen.config import load_config
    from speechgen.train import train

    randomised = tiny_sets(epochs=4, patience=0, dropout=0.2, input_noise=0.05, input_dropout=0.1,
                           scheduled_sampling=0.5, schedule_epochs=3, lr_schedule="cosine", lr_final=0.1)
    config = load_config([], randomised)
    full = tmp_path / "full"
    train(data, full, config, verbose=0, log=lambda *a: None)

    class CtrlCAtEpoch3(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    part = tmp_path / "part"
    stopped = train(data, part, config, verbose=0, log=lambda *a: None, callbacks=[CtrlCAtEpoch3()])
    assert stopped.interrupted and len(history(part)) == 2
    resumed = CliRunner().invoke(main, ["train", "--resume", str(part), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    np.testing.assert_allclose([r[1:] for r in history(part)], [r[1:] for r in history(full)], rtol=1e-6)
    lr = lr_column(full)
    np.testing.assert_allclose(lr_column(part), lr, rtol=1e-6)
    assert lr == sorted(lr, reverse=True) and lr[0] < 0.01  # decaying from learning_rate 0.01 ...
    np.testing.assert_allclose(lr[-1], 0.01 * 0.1, rtol=1e-4)  # ... to lr_final x learning_rate


def lr_column(run):
    with open(run / "history.csv") as f:
        return [float(r["learning_rate"]) for r in csv.DictReader(f)]
