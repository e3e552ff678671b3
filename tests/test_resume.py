"""Runs survive interruption: --resume, SIGKILL mid-epoch, Ctrl-C."""

import csv
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_sets
from fixtures import chord, utterance_corpus, write_pcm16
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
    from speechgen.training.callbacks import RunRecorder
    from speechgen.training.rundir import read_history

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


# --- mid-epoch checkpoints (checkpoint_batches) -------------------------------------

RANDOMISED = dict(patience=0, dropout=0.2, input_noise=0.05, input_dropout=0.1, scheduled_sampling=0.5,
                  schedule_epochs=3, dither=0.001)


class CtrlCAt(keras.callbacks.Callback):
    """Ctrl-C (KeyboardInterrupt) as batch ``batch`` (0-based) of epoch ``epoch`` begins."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.stop, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.stop:
            raise KeyboardInterrupt


def saved_config_of(path):
    """The SpeechRNN config a .keras file records (read from its config.json)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["config"]


def train_config_of(path):
    """The ``train_config`` a .keras file records."""
    return saved_config_of(path)["train_config"]


def run_record_of(path):
    """The run record (``run_state``) of a .keras file; its train_config holds none of it."""
    from speechgen.config import RUN_KEYS

    saved = train_config_of(path)
    assert not (set(RUN_KEYS) | {"run"}) & set(saved), sorted((set(RUN_KEYS) | {"run"}) & set(saved))
    return saved_config_of(path)["run_state"]


def test_ctrl_c_mid_epoch_then_resume_equals_an_uninterrupted_run(data, tmp_path):
    """Stopped after a mid-epoch checkpoint, with dropout, input noise, scheduled
    sampling and dither drawing random numbers, the run resumed from that batch ends with the
    uninterrupted run's losses: the stream position, LSTM state, metric accumulators
    and random state all come back."""
    from speechgen.config import load_config
    from speechgen.model import load_model
    from speechgen.train import train
    from speechgen.training.rundir import interrupt_message

    config = load_config([], tiny_sets(epochs=3, checkpoint_batches=4, **RANDOMISED))
    full = tmp_path / "full"
    train(data, full, config, verbose=0, log=lambda *a: None)
    plain = tmp_path / "plain"  # checkpointing changes nothing in the numbers
    train(data, plain, load_config([], tiny_sets(epochs=3, **RANDOMISED)), verbose=0, log=lambda *a: None)
    assert history(plain) == history(full)

    part = tmp_path / "part"
    stopped = train(data, part, config, verbose=0, log=lambda *a: None, callbacks=[CtrlCAt(epoch=1, batch=10)])
    assert stopped.interrupted and len(history(part)) == 1
    saved = run_record_of(part / "checkpoint.keras")
    assert (saved["epochs_done"], saved["batches_done"]) == (1, 8) and saved["epoch_seconds"] > 0
    assert set(run_record_of(part / "model.keras")) == {"val_rmse"}  # the position is the checkpoint's
    assert "interrupted: epoch 1 and 8 batches of epoch 2 are saved" in interrupt_message(stopped, part)
    assert load_model(part / "checkpoint.keras")._mid_epoch_state is not None
    assert load_model(part / "model.keras")._mid_epoch_state is None  # best models hold no state

    # checkpoint_batches may change on resume (here: checkpoints at batches 5 and 10).
    resumed = CliRunner().invoke(main, ["train", "--resume", str(part), "--quiet", "--set", "checkpoint_batches=5"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {part} at epoch 2 of 3, after batch 8 of 14" in resumed.output
    assert "\nepoch 2/3 - 6 batches - " in resumed.output  # the rest of epoch 2,
    assert "\nepoch 3/3 - 14 batches - " in resumed.output  # then epoch 3
    assert [r[0] for r in history(part)] == [1, 2, 3]
    np.testing.assert_allclose([r[1:] for r in history(part)], [r[1:] for r in history(full)], rtol=1e-5)
    saved = run_record_of(part / "checkpoint.keras")
    assert (saved["epochs_done"], saved["batches_done"]) == (3, 0) and "epoch_seconds" not in saved
    assert train_config_of(part / "checkpoint.keras")["checkpoint_batches"] == 5


HANG_AFTER_BATCH = """
import sys, time, keras
from speechgen.config import load_config
from speechgen.train import train

data, out, marker, epoch, batch, *sets = sys.argv[1:]

class Hang(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None):
        self.e = e
    def on_train_batch_begin(self, b, logs=None):
        if (self.e, b) == (int(epoch), int(batch)):
            open(marker, "w").close()
            time.sleep(600)

train(data, out, load_config([], sets), verbose=0, log=lambda *a: None, callbacks=[Hang()])
"""


def test_sigkill_after_a_mid_epoch_checkpoint_then_resume(data, uninterrupted, tmp_path):
    run, marker = tmp_path / "run", tmp_path / "hanging"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # Killed in epoch 3 at batch 10, after the checkpoint of batch 8.
    with open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", HANG_AFTER_BATCH, str(data), str(run), str(marker), "2", "10",
             *tiny_sets(epochs=4, patience=0, checkpoint_batches=4)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not marker.exists():
            time.sleep(0.02)
        assert proc.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = run_record_of(run / "checkpoint.keras")
    assert (saved["epochs_done"], saved["batches_done"]) == (2, 8)
    assert len(history(run)) == 2
    # A save cut short by a kill leaves its temporary beside the intact file.
    (run / f".checkpoint.tmp-{proc.pid}.keras").write_bytes(b"PK\x03\x04 cut short")
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert "at epoch 3 of 4, after batch 8 of 14" in resumed.output
    assert [r[0] for r in history(run)] == [1, 2, 3, 4]
    # Mid-epoch checkpoints change no number: the same losses as the run without them.
    np.testing.assert_allclose([r[1:] for r in history(run)], [r[1:] for r in uninterrupted], rtol=1e-5)
    assert not list(run.glob(".*tmp*"))
    from speechgen.model import load_model

    load_model(run / "checkpoint.keras", compile=True)
    load_model(run / "model.keras")


def test_mid_epoch_resume_keeps_the_row_resets_of_a_corpus(tmp_path):
    """In a corpus folder, rows start new utterances mid-epoch; resumed at batch 5 of
    epoch 1, the row resets of the batches after it still happen where they should."""
    from speechgen.config import load_config
    from speechgen.data.corpus import load_corpus
    from speechgen.data.framing import Framing
    from speechgen.data.pipeline import plan
    from speechgen.train import train

    corpus = utterance_corpus(tmp_path / "corpus")
    framing = dict(window=40, hop=40, seq_len=20, batch_size=4, units="[16,16]", split="[0.75,0.25,0.0]")
    config = load_config([], tiny_sets(epochs=2, patience=0, checkpoint_batches=5, **framing))
    schedule = plan([len(p) for p in load_corpus(corpus, config.split).splits["train"]], Framing(40, 40, 20), 4)
    assert schedule.fresh[6:].any() and not schedule.fresh[6:].all()  # resets after the checkpoint
    full = tmp_path / "full"
    train(corpus, full, config, verbose=0, log=lambda *a: None)
    part = tmp_path / "part"
    stopped = train(corpus, part, config, verbose=0, log=lambda *a: None, callbacks=[CtrlCAt(epoch=0, batch=8)])
    assert stopped.interrupted and history(part) == []  # no epoch finished ...
    saved = run_record_of(part / "checkpoint.keras")
    assert (saved["epochs_done"], saved["batches_done"]) == (0, 5)  # ... but 5 batches are saved
    resumed = CliRunner().invoke(main, ["train", "--resume", str(part), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert f"at epoch 1 of 2, after batch 5 of {schedule.n_batches}" in resumed.output
    np.testing.assert_allclose([r[1:] for r in history(part)], [r[1:] for r in history(full)], rtol=1e-5)


@pytest.mark.parametrize("value, problem", [
    ("-1", "checkpoint_batches must not be negative, got -1"),
    ("2.5", "checkpoint_batches must be int, got 2.5"),
    ("often", "checkpoint_batches must be int, got 'often'"),
])
def test_bad_checkpoint_batches_is_a_usage_error(data, tmp_path, value, problem):
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(tmp_path / "r"),
                                  "--set", f"checkpoint_batches={value}"])
    assert r.exit_code == 2 and problem in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_mid_epoch_checkpoints_under_a_strategy_are_a_usage_error(data, tmp_path):
    from speechgen.config import dump_config, load_config

    r = CliRunner().invoke(main, ["train", str(data), "--out", str(tmp_path / "r"), "--strategy", "mirrored",
                                  *sets(checkpoint_batches=10)])
    assert r.exit_code == 2 and "checkpoint_batches=10: mid-epoch checkpoints need --strategy none" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    run = tmp_path / "run"  # refused before the checkpoint is read
    run.mkdir()
    (run / "checkpoint.keras").write_bytes(b"")
    (run / "config.yaml").write_text(dump_config(load_config([], tiny_sets())))
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--strategy", "multi-worker",
                                  "--set", "checkpoint_batches=3"])
    assert r.exit_code == 2 and "mid-epoch checkpoints need --strategy none" in r.output
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.keras", "config.yaml"]
