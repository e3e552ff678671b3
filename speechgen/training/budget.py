"""A time budget for a run (``max_minutes``), and a cosine learning rate that follows it.

Without a budget, ``lr_schedule: cosine`` is Keras' ``CosineDecay`` over ``epochs``
(speechgen.training.optimizer). A recipe sized for "20 epochs in 30 minutes" then
misses its own schedule wherever an epoch takes longer (a bigger corpus, a slower or
busy machine): stopped at the deadline, it ends with the learning rate still high,
which is when its generated audio is worst (docs/generation.md). With ``max_minutes``
the run plans its own length instead (the idea of "budgeted training", Li, Yumer and
Ramanan, ICLR 2020: anneal to the budget you have):

- after each epoch, the planned number of epochs is how many fit into the budget at
  the mean epoch time so far (training plus validation), at most ``epochs``;
- the run ends at the end of the last planned epoch, so it stays within the budget
  (unless its first epoch alone is longer, or the last one is slower than the mean
  and overruns it by part of an epoch);
- the cosine runs from ``learning_rate`` to ``lr_final x learning_rate`` over the
  planned epochs' steps; during the first epoch, before any epoch time is known, it
  follows whichever is further along, the steps of ``epochs`` or the elapsed share of
  the budget. Its progress never goes back (a later, faster epoch does not raise the
  rate again) and is saved in the checkpoint, so a resumed run continues it.

The learning rate is set before every training batch, so such a run's optimizer is
built with a plain (settable) learning rate.
"""

import math
import time

import keras

from ..config import updated_run_state


def cosine(progress, base, final):
    """Learning rate at ``progress`` (0..1) of a cosine from ``base`` to ``final x base``
    (Keras' ``CosineDecay`` with ``alpha=final``)."""
    progress = min(1.0, max(0.0, progress))
    return base * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def planned_epochs(epoch_seconds, budget_seconds, epochs):
    """Epochs the run will do: as many as fit into ``budget_seconds`` at the mean of
    ``epoch_seconds`` (the finished epochs' times), at least those done and at most
    ``epochs``; ``epochs`` when no budget or no epoch is finished yet."""
    if not budget_seconds or not epoch_seconds:
        return epochs
    mean = sum(epoch_seconds) / len(epoch_seconds)
    return max(len(epoch_seconds), min(epochs, int(budget_seconds // mean)))


def budget_spent(epoch_seconds, budget_seconds, epochs):
    """True when a run with a budget has done all the epochs it plans
    (:func:`planned_epochs`) but not all of ``epochs``: the budget, not the epoch
    count, ends it."""
    done = len(epoch_seconds)
    return bool(budget_seconds) and done < epochs and done >= planned_epochs(epoch_seconds, budget_seconds, epochs)


class TimeBudget(keras.callbacks.Callback):
    """End the run within ``config.max_minutes`` and, for a cosine schedule built with
    a settable learning rate (:func:`drives_learning_rate`), set the learning rate
    before each batch from the run's progress.

    Args:
        config: the run's :class:`speechgen.config.Config`.
        steps_per_epoch: training batches per epoch.
        rows: history rows of earlier epochs (resuming): their ``seconds``.
        first_batch, seconds_before: resuming from a mid-epoch checkpoint, the batches
            its epoch had done and the seconds they took.
        progress: the cosine's progress saved in the checkpoint (resuming), 0..1.
        clock: seconds, monotonic (tests pass a fake one).
    Attributes:
        stopped: True when the budget ended the run.
        progress: the cosine's progress at the last batch, 0..1.
    """

    def __init__(self, config, steps_per_epoch, rows=(), first_batch=0, seconds_before=0.0, progress=0.0,
                 clock=time.perf_counter):
        super().__init__()
        self.config = config
        self.budget = config.max_minutes * 60.0
        self.steps_per_epoch = steps_per_epoch
        self.epoch_seconds = [float(r["seconds"]) for r in rows]
        self.first_batch, self.seconds_before = first_batch, seconds_before
        self.progress = float(progress)
        self.clock = clock
        self.stopped = False
        self._drive = False
        self._epoch, self._epoch_started = 0, None

    def on_train_begin(self, logs=None):
        self._drive = drives_learning_rate(self.config, self.model.optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = self.clock() - self.seconds_before

    def on_train_batch_begin(self, batch, logs=None):
        self._set_rate(self._epoch * self.steps_per_epoch + self.first_batch + batch)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(self.clock() - self._epoch_started)
        self.first_batch, self.seconds_before = 0, 0.0
        # The rate of the next step, as Keras' schedules report it at an epoch end
        # (history.csv's learning_rate column), by the plan the finished epoch updates.
        self._set_rate((epoch + 1) * self.steps_per_epoch)
        if budget_spent(self.epoch_seconds, self.budget, self.config.epochs):
            self.stopped = True
            self.model.stop_training = True

    def _set_rate(self, step):
        """Set the learning rate of optimizer step ``step`` (0-based, over the run)."""
        if not self._drive:
            return
        plan = planned_epochs(self.epoch_seconds, self.budget, self.config.epochs)
        progress = step / (plan * self.steps_per_epoch)
        if self.budget and not self.epoch_seconds:
            progress = max(progress, (self.clock() - self._epoch_started) / self.budget)
        self.progress = max(self.progress, min(1.0, progress))
        self.model.optimizer.learning_rate = cosine(self.progress, self.config.learning_rate, self.config.lr_final)
        # Saved with the next checkpoint, for a resumed run to continue from.
        self.model.run_state = updated_run_state(self.model.run_state, lr_progress=self.progress)


def drives_learning_rate(config, optimizer):
    """True when the learning rate is :class:`TimeBudget`'s to set: a cosine schedule on
    an optimizer with a plain learning rate (a run started with ``max_minutes``; one
    started without it keeps Keras' CosineDecay, which is not settable)."""
    if config.lr_schedule != "cosine":
        return False
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    # A schedule's config is a dict (its serialisation), a plain rate's a number.
    return not isinstance(inner.get_config()["learning_rate"], dict)
