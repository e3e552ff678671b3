"""A time budget (max_minutes): the run plans its epochs, ends within the budget, and its
cosine learning rate anneals over the epochs that fit (speechgen.training.budget)."""

import csv
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_sets
from fixtures import chord, write_pcm16
from speechgen.cli import main
from speechgen.config import load_config
from speechgen.errors import UsageError
from speechgen.training.budget import TimeBudget, cosine, planned_epochs


def sets(**kw):
    return [x for s in tiny_sets(**kw) for x in ("--set", s)]


def column(run, name):
    with open(run / "history.csv") as f:
        return [float(r[name]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_pcm16(tmp_path_factory.mktemp("budget") / "chord.wav", 4000, chord(4000, 30))


def test_cosine_is_keras_cosine_decay():
    schedule = keras.optimizers.schedules.CosineDecay(0.006, decay_steps=400, alpha=0.1)
    for step in (0, 1, 57, 200, 399, 400, 1000):
        np.testing.assert_allclose(cosine(step / 400, 0.006, 0.1), float(schedule(step)), rtol=1e-6)


@pytest.mark.parametrize("seconds, budget, epochs, planned", [
    ([], 1800, 20, 20),  # nothing measured yet: the configured epochs
    ([81.0], 0, 20, 20),  # no budget
    ([81.0, 79.0], 1800, 20, 20),  # 22 fit: capped at epochs
    ([120.0], 1800, 20, 15),  # a slower machine or a bigger corpus
    ([120.0, 240.0], 1800, 20, 10),  # the mean epoch time decides
    ([2000.0], 1800, 20, 1),  # the first epoch alone is over the budget: stop there
    ([700.0, 700.0, 700.0], 1800, 20, 3),  # never fewer than done
])
def test_planned_epochs(seconds, budget, epochs, planned):
    assert planned_epochs(seconds, budget, epochs) == planned


class FakeModel:
    """What the callback touches: an optimizer, the run record, stop_training."""

    def __init__(self, lr):
        self.optimizer = keras.optimizers.Adam(learning_rate=lr)
        self.run_state, self.stop_training = {}, False


def drive(callback, model, epochs, steps, seconds_per_batch, clock):
    """Run ``callback`` through ``epochs`` epochs of ``steps`` batches, the fake clock
    advancing by ``seconds_per_batch`` each batch; the learning rate of every batch."""
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        for batch in range(steps):
            callback.on_train_batch_begin(batch)
            rates.append(float(model.optimizer.learning_rate))
            clock[0] += seconds_per_batch
        callback.on_epoch_end(epoch)
        if model.stop_training:
            break
    return rates


def test_the_budget_plans_the_epochs_and_the_cosine_ends_with_them():
    # 10 epochs configured, 60 s budget, 20 s per epoch: 3 epochs fit.
    config = load_config([], ["max_minutes=1", "epochs=10", "lr_schedule=cosine", "learning_rate=0.01", "lr_final=0.1"])
    clock = [0.0]
    budget = TimeBudget(config, steps_per_epoch=10, clock=lambda: clock[0])
    model = FakeModel(0.01)
    rates = drive(budget, model, 10, 10, 2.0, clock)
    assert budget.stopped and model.stop_training and len(rates) == 30
    assert rates == sorted(rates, reverse=True)
    # Epoch 1: the budget's elapsed share (2 s a batch of 60 s) is ahead of the 100 steps' share.
    np.testing.assert_allclose(rates[5], cosine(10.0 / 60.0, 0.01, 0.1), rtol=1e-6)
    # From epoch 2 on: the steps of the 3 planned epochs (the progress never goes back).
    np.testing.assert_allclose(rates[25], cosine(25 / 30, 0.01, 0.1), rtol=1e-6)
    np.testing.assert_allclose(rates[-1], cosine(29 / 30, 0.01, 0.1), rtol=1e-6)
    assert model.run_state["lr_progress"] == 1.0  # the rate of the step after the last: lr_final


def test_without_a_budget_the_cosine_follows_the_epochs_and_nothing_stops():
    config = load_config([], ["epochs=4", "lr_schedule=cosine", "learning_rate=0.01"])
    clock = [0.0]
    model = FakeModel(0.01)
    rates = drive(TimeBudget(config, steps_per_epoch=5, clock=lambda: clock[0]), model, 4, 5, 100.0, clock)
    assert not model.stop_training and len(rates) == 20
    np.testing.assert_allclose(rates, [cosine(s / 20, 0.01, 0.1) for s in range(20)], rtol=1e-6)


def test_a_constant_rate_is_left_alone_but_the_budget_still_ends_the_run():
    config = load_config([], ["max_minutes=1", "epochs=10", "learning_rate=0.01"])
    clock = [0.0]
    model = FakeModel(0.01)
    rates = drive(TimeBudget(config, steps_per_epoch=10, clock=lambda: clock[0]), model, 10, 10, 2.0, clock)
    assert model.stop_training and len(rates) == 30
    np.testing.assert_allclose(rates, 0.01, rtol=1e-6)


def test_a_budget_larger_than_the_run_trains_exactly_as_keras_cosine_decay(data, tmp_path):
    """The same tiny run with Keras' CosineDecay (no budget) and with the budget's
    cosine (a budget it never reaches): the same learning rates and losses."""
    common = sets(epochs=3, patience=0, lr_schedule="cosine", lr_final=0.1)
    for name, extra in (("keras", []), ("budget", ["--set", "max_minutes=1000"])):
        r = CliRunner().invoke(main, ["train", str(data), "--out", str(tmp_path / name), "--quiet", *common, *extra])
        assert r.exit_code == 0, r.output
    for key in ("learning_rate", "loss", "val_loss"):
        np.testing.assert_allclose(column(tmp_path / "budget", key), column(tmp_path / "keras", key), rtol=1e-4)
    lr = column(tmp_path / "budget", "learning_rate")
    assert lr == sorted(lr, reverse=True) and lr[-1] < 0.01 * 0.2
    summary = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert summary["stopped"] == "epochs" and summary["epochs"] == 3


def test_a_spent_budget_ends_the_run_and_resume_says_how_to_go_on(data, tmp_path):
    run = tmp_path / "run"
    # 0.06 s: the first epoch alone is over it.
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(run), "--quiet",
                                  *sets(epochs=3, patience=0, lr_schedule="cosine", max_minutes=0.001)])
    assert r.exit_code == 0, r.output
    assert "1 epochs (as many as fit in max_minutes=0.001)" in r.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped"] == "budget" and summary["epochs"] == 1
    lr = column(run, "learning_rate")
    np.testing.assert_allclose(lr[0], 0.01 * 0.1, rtol=1e-4)  # annealed within the one epoch that fit
    again = CliRunner().invoke(main, ["train", "--resume", str(run)])
    assert again.exit_code == 1
    assert "another would not fit; resume with --set max_minutes=N" in again.output
    assert len(column(run, "loss")) == 1  # nothing changed
    more = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet", "--set", "max_minutes=0"])
    assert more.exit_code == 0, more.output
    assert len(column(run, "loss")) == 3
    # The saved progress (1.0) holds: the rate does not climb back up the cosine.
    np.testing.assert_allclose(column(run, "learning_rate"), 0.01 * 0.1, rtol=1e-4)


def test_bad_budgets_are_usage_errors(data, tmp_path):
    with pytest.raises(UsageError, match="max_minutes must be 0 .no time budget. or positive, got -1"):
        load_config([], ["max_minutes=-1"])
    done = subprocess.run([sys.executable, "-m", "speechgen.cli", "train", str(data), "--out", str(tmp_path / "r"),
                           "--strategy", "multi-worker", "--set", "max_minutes=5"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "max_minutes=5: a time budget needs one process" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_a_run_started_without_a_budget_keeps_keras_schedule_when_resumed_with_one(data, tmp_path):
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(run), "--quiet",
                                  *sets(epochs=2, patience=0, lr_schedule="cosine", lr_final=0.1)])
    assert r.exit_code == 0, r.output
    more = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet", "--set", "epochs=3",
                                     "--set", "max_minutes=1000"])
    assert more.exit_code == 0, more.output
    lr = column(run, "learning_rate")
    # CosineDecay's length was fixed at 2 epochs when the run started: epoch 3 stays at its end.
    np.testing.assert_allclose(lr[1:], 0.01 * 0.1, rtol=1e-4)
    assert len(lr) == 3
