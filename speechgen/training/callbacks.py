"""Keras callbacks that keep truncated BPTT honest and a run safe.

- :class:`ResetStates`: ``fit`` never resets LSTM state; state from the end of one
  epoch (or from the training streams) must not leak into the next epoch or into
  validation.
- :class:`StopOnNaN`: a diverging run stops with a message and keeps the best model.
- :class:`RunRecorder`: per-epoch history (loss, val_loss, seconds) in ``history.csv``,
  the best model in ``model.keras`` and the last one, with optimizer state, in
  ``checkpoint.keras`` (also every ``checkpoint_batches`` batches within an epoch),
  with ``keep_epochs`` a copy of every N-th epoch's model in ``epochs/``; every file
  written atomically.
- :class:`EpochLog`: one plain line per epoch, for logs and ``--quiet``.
- (:class:`speechgen.training.listen.Listen`, its own module: generation scored after
  every N-th epoch, whose values ``RunRecorder`` records.)
- :class:`EndAfterEpoch`: ends ``fit`` after the epoch in progress (a resumed run
  finishes a checkpointed epoch in a ``fit`` of its own).
"""

import math
import time
from pathlib import Path

import keras

from ..config import updated_run_state
from ..files import atomic_path, write_text
from .rundir import LISTEN_KEYS


class ResetStates(keras.callbacks.Callback):
    """Zero LSTM states at every epoch start and before every validation pass, and the
    state of single rows where a new stream (utterance) starts mid-epoch.

    A run resumed from a mid-epoch checkpoint starts its first epoch at batch
    ``first_batch`` of the schedule: that epoch begins with the checkpoint's LSTM
    state and metric accumulators (:meth:`SpeechRNN.restore_mid_epoch_state`) instead
    of zeros, and its batch ``b`` is batch ``first_batch + b`` of the schedule.

    Args:
        train_plan, valid_plan: the training and validation
            :class:`speechgen.data.pipeline.Schedule` (their ``rows_to_reset``), or None.
        first_batch: where the first epoch starts (0, or the batches a mid-epoch
            checkpoint had done).
    """

    def __init__(self, train_plan=None, valid_plan=None, first_batch=0):
        super().__init__()
        self.train_plan, self.valid_plan = train_plan, valid_plan
        self.first_batch = first_batch

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_batch:
            # Keras has just reset the metrics; put back the checkpoint's.
            self.model.restore_mid_epoch_state()
        else:
            self.model.reset_rnn_states()

    def on_epoch_end(self, epoch, logs=None):
        self.first_batch = 0  # later epochs start at batch 0

    def on_test_begin(self, logs=None):
        self.model.reset_rnn_states()

    def on_train_batch_begin(self, batch, logs=None):
        self._rows(self.train_plan, self.first_batch + batch)

    def on_test_batch_begin(self, batch, logs=None):
        self._rows(self.valid_plan, batch)

    def _rows(self, schedule, batch):
        rows = schedule.rows_to_reset(batch) if schedule is not None else None
        if rows is not None:
            from .distribute import reset_rows

            reset_rows(self.model, rows)


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first non-finite training loss.

    Attributes:
        batch: ``(epoch, batch)`` where it happened, or None.
    """

    def __init__(self):
        super().__init__()
        self.batch = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.batch = (self._epoch, batch)
            self.model.stop_training = True


class RunRecorder(keras.callbacks.Callback):
    """Write history, the best model and the last checkpoint after each epoch, and
    stop early when ``monitor`` has not improved for ``patience`` epochs.

    All of its state derives from the history rows, so a resumed run (given the rows
    of ``history.csv``) continues the same early-stopping count.

    With ``checkpoint_batches`` N > 0 it also writes ``checkpoint.keras`` after every
    N-th training batch of an epoch (counted from the epoch's start, the epoch's last
    batch excepted: the epoch-end checkpoint follows). Such a mid-epoch checkpoint
    records ``epochs_done`` (finished epochs), ``batches_done`` (batches of the next
    epoch done) and ``epoch_seconds`` (that epoch's training time so far) in the
    model's run record (``model.run_state``, :data:`speechgen.config.RUN_KEYS`), and
    holds the LSTM state and metric accumulators as well. ``model.keras`` records only ``val_rmse`` there.

    Args:
        run_dir: the run directory.
        monitor: the history column that decides "best" (lower is better): ``val_loss``,
            or ``listen_distance`` (``best_by: listening``; epochs without a check never
            count as best).
        rows: history of earlier epochs (resuming).
        patience: epochs without improvement before stopping (0: never stop early).
        schedules: the run's DriftSchedules, whose values each history row records.
        checkpoint_batches: also checkpoint every this many batches (0: epoch ends only).
        keep_epochs: also keep ``epochs/epoch-NNN.keras`` (like ``model.keras``: no
            optimizer slots; its run record holds that epoch's ``val_rmse``) after every
            this many epochs (0: none), so any epoch can be sampled or scored later.
        n_batches: training batches per epoch.
        first_batch, seconds_before: resuming from a mid-epoch checkpoint, the batches
            its epoch had done and the seconds they took (the first epoch's row adds
            them).
    Attributes:
        rows: one dict per finished epoch (epoch from 1, loss, val_loss, seconds).
        best_epoch, best: epoch (from 1) and value of the best ``monitor`` so far.
        checkpointed: ``(epochs_done, batches_done)`` of ``checkpoint.keras`` as it is
            on disk (``(0, 0)``: none yet).
    """

    def __init__(self, run_dir, monitor="val_loss", rows=(), patience=0, schedules=None,
                 checkpoint_batches=0, n_batches=None, first_batch=0, seconds_before=0.0, keep_epochs=0):
        super().__init__()
        self.schedules = schedules  # a speechgen.schedules.DriftSchedules, or None
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.patience = patience
        self.rows = list(rows)
        self.checkpoint_batches = checkpoint_batches
        self.keep_epochs = keep_epochs
        self.n_batches = n_batches
        self.first_batch, self.seconds_before = first_batch, seconds_before
        self.checkpointed = (len(self.rows), first_batch)
        self.best_epoch, self.best = None, math.inf
        for row in self.rows:
            value = row.get(monitor, math.nan)
            if math.isfinite(value) and value < self.best:
                self.best, self.best_epoch = value, row["epoch"]

    def should_stop(self):
        """True when the last ``patience`` epochs brought no improvement."""
        if not self.patience or not self.rows or self.best_epoch is None:
            return False
        return self.rows[-1]["epoch"] - self.best_epoch >= self.patience

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        every = self.checkpoint_batches
        done = self.first_batch + batch + 1  # batches of this epoch done
        if not every or done % every or (self.n_batches and done >= self.n_batches):
            return
        loss = (logs or {}).get("loss")
        if self.model.stop_training or loss is None or not math.isfinite(float(loss)):
            return  # never checkpoint a diverged model
        self.save_mid_epoch(done)

    def save_mid_epoch(self, done):
        """Write ``checkpoint.keras`` after ``done`` batches of the epoch in progress."""
        if not (self.run_dir / "history.csv").exists():
            self.write_history()  # resume reads it (epoch 1: the header alone)
        state = self.model.run_state
        seconds = self.seconds_before + time.perf_counter() - self._started
        self.model.run_state = updated_run_state(
            state, epochs_done=self._epoch, batches_done=done, epoch_seconds=seconds
        )
        try:
            with self.model.saving_mid_epoch():
                self.save(self.run_dir / "checkpoint.keras", include_optimizer=True)
        finally:
            # Only the checkpoint records the position; model.keras files never do.
            self.model.run_state = state
        self.checkpointed = (self._epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = self.seconds_before + time.perf_counter() - self._started
        self.first_batch, self.seconds_before = 0, 0.0  # later epochs run whole
        row = {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "seconds": seconds,
            # The drift schedules' values this epoch (speechgen.schedules).
            "sampling_p": float(self.schedules.values.get("sampling_p", 0.0)) if self.schedules else 0.0,
            "input_noise": float(self.schedules.values.get("input_noise", 0.0)) if self.schedules else 0.0,
            "learning_rate": self._learning_rate(),
            # Categorical heads: the cross-entropy in bits per sample (NaN for MSE heads).
            "bits": float(logs.get("bits", math.nan)),
            "val_bits": float(logs.get("val_bits", math.nan)),
            # What Listen (listen_every) heard this epoch (NaN in epochs without a check).
            **{key: float(logs.get(key, math.nan)) for key in LISTEN_KEYS},
        }
        self.rows.append(row)
        self.write_history()
        value = row.get(self.monitor, math.nan)
        # Sampling with --temperature scales its noise by the validation RMSE.
        val_mse = float(logs.get("val_mse", row["val_loss"]))  # without the L2 penalty
        if math.isfinite(value) and value < self.best:
            self.best, self.best_epoch = value, epoch + 1
            if math.isfinite(val_mse):
                self.model.run_state = updated_run_state(self.model.run_state, val_rmse=math.sqrt(val_mse))
            self.save(self.run_dir / "model.keras", include_optimizer=False)
        if self.keep_epochs and (epoch + 1) % self.keep_epochs == 0 and math.isfinite(row["loss"]):
            self._keep(epoch + 1, val_mse)
        if math.isfinite(row["loss"]):
            # The checkpoint is the commit point of an epoch: it records how many epochs
            # it holds, so a resume after a kill between the writes above and this one
            # trusts the checkpoint and drops the history rows written after it.
            self.model.run_state = updated_run_state(
                self.model.run_state, epochs_done=epoch + 1, batches_done=0, epoch_seconds=None
            )
            self.save(self.run_dir / "checkpoint.keras", include_optimizer=True)
            self.checkpointed = (epoch + 1, 0)
        if self.should_stop():
            self.model.stop_training = True

    def _keep(self, epoch, val_mse):
        """Write ``epochs/epoch-NNN.keras``: this epoch's weights, whether best or not."""
        state = self.model.run_state
        if math.isfinite(val_mse):
            self.model.run_state = updated_run_state(state, val_rmse=math.sqrt(val_mse))
        try:
            (self.run_dir / "epochs").mkdir(exist_ok=True)
            self.save(self.run_dir / "epochs" / f"epoch-{epoch:03d}.keras", include_optimizer=False)
        finally:
            self.model.run_state = state  # model.keras's val_rmse stays the best epoch's

    def _learning_rate(self):
        """The optimizer's learning rate after this epoch's last step (NaN if unknown)."""
        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return math.nan

    def save(self, path, include_optimizer):
        with atomic_path(path) as tmp:
            if include_optimizer:
                self.model.save(tmp)
            else:
                # The best model is for sampling and evaluation: no optimizer slots
                # (they would triple the file), so save a clean copy of the weights.
                copy = type(self.model).from_config(self.model.get_config())
                copy.set_weights(self.model.get_weights())
                # The position in the run belongs to the checkpoint alone.
                copy.run_state = updated_run_state(
                    copy.run_state, epochs_done=None, batches_done=None, epoch_seconds=None, lr_progress=None
                )
                copy.save(tmp)

    def write_history(self):
        lines = [",".join(["epoch,loss,val_loss,seconds,sampling_p,input_noise,learning_rate,bits,val_bits",
                           *LISTEN_KEYS])]
        lines += [
            f"{r['epoch']},{r['loss']:.8g},{r['val_loss']:.8g},{r['seconds']:.3f},"
            f"{r.get('sampling_p', 0.0):.6g},{r.get('input_noise', 0.0):.6g},{r.get('learning_rate', math.nan):.6g},"
            f"{r.get('bits', math.nan):.6g},{r.get('val_bits', math.nan):.6g},"
            + ",".join(f"{r.get(key, math.nan):.6g}" for key in LISTEN_KEYS)
            for r in self.rows
        ]
        write_text(self.run_dir / "history.csv", "\n".join(lines) + "\n")


class EpochLog(keras.callbacks.Callback):
    """One plain line per finished epoch, for logs (no progress bar, no terminal codes):
    ``epoch 3/5 - 11 batches - loss 0.0196 - val_loss 0.0095 - 0.4 s - best so far``
    (the training batches this session ran of the epoch: fewer when resumed mid-epoch).

    It reads the history row that ``recorder`` (a :class:`RunRecorder`) has just added,
    so it must come after the recorder in the callback list.

    Args:
        recorder: the run's :class:`RunRecorder`.
        epochs: the run's epoch count (for ``N/M``).
        log: where the line goes (``print``).
    """

    def __init__(self, recorder, epochs, log=print):
        super().__init__()
        self.recorder, self.epochs, self.log = recorder, epochs, log
        self.batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        row = self.recorder.rows[-1]
        parts = [
            f"epoch {row['epoch']}/{self.epochs}", f"{self.batches} batches",
            f"loss {row['loss']:.6g}", f"val_loss {row['val_loss']:.6g}",
        ]
        if math.isfinite(row.get("bits", math.nan)):
            parts += [f"bits {row['bits']:.4f}", f"val_bits {row['val_bits']:.4f} bits/sample"]
        parts += [f"{key} {row[key]:.4g}" for key in ("sampling_p", "input_noise") if row.get(key)]
        if math.isfinite(row.get("listen_voiced", math.nan)):  # Listen checked this epoch
            parts.append(f"listen q {row['listen_q']:.2f} voiced {row['listen_voiced']:.2f} "
                         f"silent {row['listen_silent']:.2f} distance {row['listen_distance']:.2f} "
                         f"({row['listen_time']:.1f} s)")
        parts.append(f"{row['seconds']:.1f} s")
        if self.recorder.best_epoch == row["epoch"]:
            parts.append("best so far")
        self.log(" - ".join(parts))


class EndAfterEpoch(keras.callbacks.Callback):
    """End ``fit`` after the epoch in progress (its validation and callbacks done)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True
