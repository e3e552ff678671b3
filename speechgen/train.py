"""Training: data -> model -> fit with TBPTT callbacks -> a complete run directory.

A run directory (docs/design.md) holds ``model.keras`` (best by val_loss,
self-contained), ``checkpoint.keras`` (last finished epoch, or a position within the
next with ``checkpoint_batches``; with optimizer state),
``config.yaml`` (resolved), ``history.csv``, ``curves.png`` and ``summary.json``.
``resume`` continues a run from ``checkpoint.keras`` at the epoch after the last
finished one, or, from a mid-epoch checkpoint (``checkpoint_batches``), at the batch
where it was saved; the run state (history, best epoch, early-stopping counter) is
rebuilt from ``history.csv``, so nothing but those files is needed.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .config import check_resumable, dump_config, load_config, updated_run_state
from .data.corpus import Normaliser, load_corpus, reopen_corpus
from .data.trim import trim_of
from .errors import SpeechgenError, UsageError
from .files import write_text
from .training.rundir import (
    discard_unfinished, prepare_run_dir, read_history, remove_temporaries, worker_dir,
)

@dataclass
class RunResult:
    """What a finished run reports (also written to ``summary.json``).

    ``interrupted`` is True when Ctrl-C stopped it (the last finished epoch, or the
    last mid-epoch checkpoint, is kept).
    """

    summary: dict
    stopped_by_nan: bool
    interrupted: bool = False


def _phones_for(config, corpus=None, model=None):
    """``(inventory, folding, context)`` for phone-conditioned training, else None.

    A new run takes the inventory from the labels of every split: they are labels,
    not test audio, and a phone only valid or test speakers say must still have an
    id (its embedding stays untrained). A resumed run takes the model's.
    """
    from .data.phones import CONTEXTS, folding_table, inventory_of, model_phones

    if config.phones == "none":
        return None
    if model is not None:
        return model_phones(model)
    folding = folding_table(config.phone_folding)
    inventory = inventory_of([p for split in corpus.splits.values() for p in split], folding)
    return inventory, folding, CONTEXTS[config.phones]


def _datasets(corpus, normaliser, config, phones):
    from .data.pipeline import split_batches

    from .data.framing import Framing

    quantise = (config.levels, config.quantisation) if config.output == "categorical" else None
    # Dither is training data's noise floor only: validation (early stopping) and
    # evaluation score the audio as it is.
    dither = (config.dither, config.seed) if config.dither else None
    return [
        split_batches(
            corpus, split, normaliser, Framing.of(config), config.batch_size, phones, config.max_batches, quantise,
            joined=config.utterances == "joined", dither=dither if split == "train" else None,
        )
        for split in ("train", "valid")
    ]


def _scope(strategy):
    import contextlib

    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def train(data, out, config, force=False, verbose=1, log=print, callbacks=(), strategy="none", tensorboard=False):
    """Train a new model on ``data`` and write the run directory ``out``.

    Args:
        data: a WAV/SPHERE file or a corpus folder.
        out: run directory (created; must be empty unless ``force``).
        config: a resolved :class:`speechgen.config.Config`.
        verbose: progress: 1 = Keras' live bar per epoch (for terminals), 2 = one plain
            line per epoch through ``log`` (for logs: no carriage returns or colour
            codes), 0 = none.
        log: where progress lines go.
        callbacks: extra Keras callbacks (run after speechgen's own).
        strategy: ``none``, ``mirrored`` or ``multi-worker`` (speechgen.distribute).
        tensorboard: also write TensorBoard logs to ``out/tensorboard``.
    Returns:
        :class:`RunResult`.
    Raises:
        SpeechgenError: bad data, data too short for the config, unwritable output.
    """
    from .training.distribute import is_chief, make_strategy, per_replica_batch

    # Validate everything that can fail before creating anything on disk.
    _check_mid_epoch_strategy(config, strategy)
    _check_budget_strategy(config, strategy)
    _check_listening_strategy(config, strategy)
    corpus = load_corpus(data, config.split, config.seed, trim=trim_of(config.trim_silence, config.trim_margin))
    if config.phones != "none" and corpus.layout == "file":
        raise SpeechgenError(
            f"{corpus.source}: phone conditioning needs a corpus folder (.wav with .PHN beside "
            "each); train a single file with --set phones=none"
        )
    _check_listening(corpus, config)
    normaliser = Normaliser.fit(config.normalisation, corpus.splits["train"], config.pre_emphasis)
    phones = _phones_for(config, corpus)
    strategy = make_strategy(strategy)
    rows_per_replica = per_replica_batch(config.batch_size, strategy)
    datasets = _datasets(corpus, normaliser, config, phones)
    steps = _steps_per_epoch(datasets, config)
    if not is_chief(strategy):
        with _scope(strategy):
            model = _new_model(corpus, normaliser, phones, config, rows_per_replica, steps, strategy)
        with worker_dir() as scratch:
            return _fit(model, corpus, config, Path(scratch), datasets, [], verbose, log, callbacks, chief=False)
    fresh = not Path(out).exists()
    out = prepare_run_dir(out, force)
    try:
        with _scope(strategy):
            model = _new_model(corpus, normaliser, phones, config, rows_per_replica, steps, strategy)
        write_text(out / "config.yaml", dump_config(config))
        for note in corpus.notes:
            log(f"note: {note}")
        note = _jit_note(config, strategy)
        if note:
            log(note)
        callbacks = [*callbacks, *_tensorboard(tensorboard, out, corpus, normaliser, config)]
        result = _fit(model, corpus, config, out, datasets, [], verbose, log, callbacks)
    except BaseException:
        discard_unfinished(out, fresh)
        raise
    if result.interrupted or result.stopped_by_nan:
        # Nothing to resume (no checkpoint): leave nothing behind, so the same command
        # can simply be run again (with a lower learning rate, say).
        discard_unfinished(out, fresh)
    return result


def monitor_of(config):
    """The history column that chooses ``model.keras`` and counts patience."""
    return "listen_distance" if config.best_by == "listening" else "val_loss"


def _best_line(recorder, config):
    """The end of the run's last line: which epoch model.keras holds, and why."""
    if not recorder.best_epoch:
        return "no epoch heard (model.keras not written)" if config.best_by == "listening" else "no finite val_loss"
    row = recorder.rows[recorder.best_epoch - 1]
    if config.best_by == "listening":
        return (f"model.keras is epoch {recorder.best_epoch}, best by listening (distance {recorder.best:.3f}: "
                f"q {row['listen_q']:.2f}, voiced {row['listen_voiced']:.2f}, silent {row['listen_silent']:.2f}; "
                f"val_loss {row['val_loss']:.6g})")
    return f"best val_loss {recorder.best:.6g} at epoch {recorder.best_epoch}"


def _check_listening_strategy(config, strategy):
    """Only the chief listens: workers of a multi-worker run could not stop early on
    what it heard (they would wait for each other)."""
    if strategy == "multi-worker" and config.best_by == "listening" and config.patience:
        raise UsageError(
            f"--set best_by=listening with patience={config.patience}: only the chief of a multi-worker run "
            "listens, so the workers cannot stop early on it; set patience=0 (or best_by=val_loss)"
        )


def _check_budget_strategy(config, strategy):
    """A time budget decides when the run ends and how fast its learning rate falls from
    a clock: workers of a multi-worker run would each read their own and disagree."""
    if strategy == "multi-worker" and config.max_minutes:
        raise UsageError(
            f"--set max_minutes={config.max_minutes:g}: a time budget needs one process (--strategy none or "
            "mirrored); with multi-worker, set epochs"
        )


def _check_listening(corpus, config):
    """With ``listen_every``, refuse a validation split that cannot prime, before
    anything is created or changed (``Listen`` would refuse it only in ``_fit``)."""
    if config.listen_every:
        from .training.listen import Listen

        Listen.check(corpus, config)


def _check_mid_epoch_strategy(config, strategy):
    """Mid-epoch checkpoints are for one process on one device: under a strategy each
    replica holds its own rows' LSTM state, which a checkpoint does not gather."""
    if strategy not in (None, "none") and config.checkpoint_batches:
        raise UsageError(
            f"--set checkpoint_batches={config.checkpoint_batches}: mid-epoch checkpoints need --strategy none; "
            "use checkpoint_batches=0 with --strategy " + str(strategy)
        )


def _steps_per_epoch(datasets, config):
    """Training batches per epoch (the plan's, capped by ``max_batches``)."""
    n = datasets[0][1].n_batches
    return min(n, config.max_batches or n)


def _new_model(corpus, normaliser, phones, config, rows_per_replica, steps_per_epoch, strategy=None):
    """A compiled model; under a strategy, each replica holds ``rows_per_replica`` rows."""
    from .model import build_model
    from .training.optimizer import make_optimizer

    splits = {"layout": corpus.layout, **corpus.split_names()} if corpus.layout != "file" else None
    durations = None
    if phones:  # per-phone medians of every split's labels, as the inventory (speechgen say)
        from .data.phones import median_durations

        durations = median_durations([p for s in corpus.splits.values() for p in s], phones[1], corpus.rate)
    model = build_model(
        config, corpus.rate, normaliser, corpus.source, batch_size=rows_per_replica,
        phones=phones[0].to_list() if phones else None, splits=splits, phone_durations=durations,
    )
    # The loss includes any L2 penalty; the "mse" metric is the pure error that
    # --temperature scales its noise by.
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch), loss=model.head.loss(), metrics=model.head.metrics(),
        **_jit_compile(config, strategy),
    )
    return model


def _jit_compile(config, strategy):
    """``model.compile``'s ``jit_compile`` for ``config.jit_compile`` (``{}``: Keras'
    auto). Under a distribution strategy the step is never XLA-compiled: TensorFlow's
    XLA cannot compile a step whose variables are mirrored over replicas (it fails at
    the first batch), which is also why Keras' auto turns it off there."""
    if strategy is not None:
        return {"jit_compile": False}
    return {"on": {"jit_compile": True}, "off": {"jit_compile": False}}.get(config.jit_compile, {})


def _jit_note(config, strategy):
    """The line that says a set ``jit_compile: on`` is not used, or None."""
    if strategy is not None and config.jit_compile == "on":
        return "note: jit_compile on is not used under a distribution strategy (XLA cannot compile mirrored " \
               "variables' step); training uncompiled"
    return None


def resume(run, sets=(), verbose=1, log=print, callbacks=(), strategy="none", tensorboard=False):
    """Continue the run in ``run`` from its last checkpoint.

    Args:
        run: an existing run directory.
        sets: ``key=value`` overrides of the saved config (e.g. ``epochs=50``); the
            model's shape cannot change.
        strategy: as the run was trained (the same number of replicas).
    Raises:
        SpeechgenError: no checkpoint or history, a broken checkpoint, data gone.
    """
    from .training.distribute import is_chief, make_strategy, per_replica_batch
    from .model import load_model

    run = Path(run)
    checkpoint = run / "checkpoint.keras"
    if not run.is_dir():
        raise SpeechgenError(f"{run}: no such run directory to resume")
    if not checkpoint.exists():
        raise SpeechgenError(
            f"{checkpoint}: no checkpoint to resume from (the run never finished an epoch); "
            "start it again with --force"
        )
    config = load_config([run / "config.yaml"], sets)
    _check_mid_epoch_strategy(config, strategy)
    _check_budget_strategy(config, strategy)
    _check_listening_strategy(config, strategy)
    strategy = make_strategy(strategy)
    chief = is_chief(strategy)
    rows_per_replica = per_replica_batch(config.batch_size, strategy)
    with _scope(strategy):
        model = load_model(checkpoint, compile=True)
        if strategy is not None:
            model.jit_compile = False  # as _jit_compile: never under a strategy
    if model.batch_size != rows_per_replica:
        raise SpeechgenError(
            f"{run}: trained with {config.batch_size // model.batch_size} replica(s), resumed with "
            f"{config.batch_size // rows_per_replica}; resume with the same --strategy and devices"
        )
    saved = model.train_config or {}
    check_resumable(saved, config)
    state = model.run_state
    done = state.get("epochs_done")
    position = int(state.get("batches_done") or 0)  # batches of epoch done + 1 (mid-epoch checkpoint)
    if position and strategy is not None:
        raise UsageError(
            f"{run}: the checkpoint was saved in the middle of epoch {done + 1}; resume it with --strategy none"
        )
    history_file = run / "history.csv"
    # A checkpoint from the middle of epoch 1 may precede the first history.csv.
    rows = [] if done == 0 and not history_file.exists() else read_history(history_file)
    done = len(rows) if done is None else done
    if len(rows) < done:
        raise SpeechgenError(f"{run / 'history.csv'}: shorter than the checkpoint's {done} epochs; damaged run")
    rows = rows[:done]  # rows written after the last checkpoint are redone
    if len(rows) >= config.epochs:
        raise SpeechgenError(
            f"{run}: already ran {len(rows)} of {config.epochs} epochs; resume with --set epochs=N for more"
        )
    from .training.budget import budget_spent
    from .training.callbacks import RunRecorder

    if budget_spent([r["seconds"] for r in rows], config.max_minutes * 60, config.epochs):
        spent = sum(r["seconds"] for r in rows) / 60
        raise SpeechgenError(
            f"{run}: its {len(rows)} epochs took {spent:.1f} of its max_minutes={config.max_minutes:g}, and "
            f"another would not fit; resume with --set max_minutes=N for more (or max_minutes=0)"
        )
    stopped = RunRecorder(run, monitor=monitor_of(config), rows=rows, patience=config.patience)
    if stopped.should_stop():
        waited = len(rows) - stopped.best_epoch
        raise SpeechgenError(
            f"{run}: stopped early at epoch {len(rows)} (best epoch {stopped.best_epoch}); to go on, "
            f"resume with --set patience={waited + 1} or more (or patience=0)"
        )
    corpus = reopen_corpus(saved)
    _check_listening(corpus, config)
    normaliser = Normaliser.from_dict(model.normaliser)
    datasets = _datasets(corpus, normaliser, config, _phones_for(config, model=model))
    steps = _steps_per_epoch(datasets, config)
    partial = None
    where = ""
    if position:
        if position >= steps:
            raise SpeechgenError(
                f"{run}: the checkpoint is after batch {position} of epoch {done + 1}, but max_batches="
                f"{config.max_batches} leaves {steps} batches per epoch; resume with max_batches=0 or above {position}"
            )
        if getattr(model, "_mid_epoch_state", None) is None:
            raise SpeechgenError(
                f"{checkpoint}: records batch {position} of epoch {done + 1} but holds no LSTM state; "
                "damaged checkpoint"
            )
        partial = {"batches_done": position, "seconds": float(state.get("epoch_seconds") or 0.0)}
        where = f", after batch {position} of {steps}"
    # The position belongs to the checkpoint file alone; later saves set their own.
    model.run_state = updated_run_state(state, batches_done=None, epoch_seconds=None)
    model.train_config = {**saved, **config.to_dict()}
    log(f"resuming {run} at epoch {len(rows) + 1} of {config.epochs}{where}")
    if not chief:
        with worker_dir() as scratch:
            return _fit(model, corpus, config, Path(scratch), datasets, rows, verbose, log, callbacks, chief=False)
    remove_temporaries(run)
    write_text(run / "config.yaml", dump_config(config))
    callbacks = [*callbacks, *_tensorboard(tensorboard, run, corpus, normaliser, config)]
    return _fit(model, corpus, config, run, datasets, rows, verbose, log, callbacks, partial)


def _tensorboard(enabled, run, corpus, normaliser, config):
    if not enabled:
        return []
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise SpeechgenError("--tensorboard needs the tensorboard package: pip install 'speechgen[tensorboard]'")
    from .training.tensorboard import tensorboard_callbacks

    from .data.framing import Framing

    return tensorboard_callbacks(run, corpus, normaliser, Framing.of(config), phones=config.phones != "none")


def _fit(model, corpus, config, out, datasets, rows, verbose, log, callbacks, partial=None, chief=True):
    """Fit from epoch ``len(rows)`` to ``config.epochs``; write history, models, summary.

    ``partial`` (resuming from a mid-epoch checkpoint): ``{"batches_done": k,
    "seconds": s}``; the first epoch then runs from batch ``k`` of its schedule, and
    its history row adds the ``s`` seconds the batches before took. Only the ``chief``
    (not the other workers of a multi-worker run) listens (``listen_every``).
    """
    from .training.callbacks import EndAfterEpoch, EpochLog, ResetStates, RunRecorder, StopOnNaN
    from .training.budget import TimeBudget
    from .training.schedules import DriftSchedules
    from .evaluate import evaluate_model
    from .model import load_model
    from .plots import plot_curves

    (train_ds, train_plan), (valid_ds, valid_plan) = datasets
    n_batches = _steps_per_epoch(datasets, config)
    inventory = model.phones
    log(
        f"training on {corpus.source}: {corpus.seconds('train'):.1f} s train, "
        f"{corpus.seconds('valid'):.1f} s valid, {corpus.seconds('test'):.1f} s test at "
        f"{corpus.rate} Hz; {model.count_params():,} parameters; "
        f"{n_batches} batches of {config.batch_size} streams x {config.seq_len} steps per epoch "
        f"({train_plan.coverage * n_batches / train_plan.n_batches:.0%} of the training steps)"
        + (f"; {len(inventory)} phones ({config.phones})" if inventory else "")
    )
    first = partial["batches_done"] if partial else 0
    seconds_before = partial["seconds"] if partial else 0.0
    schedules = DriftSchedules(config)
    recorder = RunRecorder(
        out, monitor=monitor_of(config), rows=rows, patience=config.patience, schedules=schedules,
        checkpoint_batches=config.checkpoint_batches, n_batches=n_batches, keep_epochs=config.keep_epochs,
        first_batch=first, seconds_before=seconds_before,
    )
    nan_guard = StopOnNaN()
    listening = []
    if config.listen_every and chief:
        from .training.listen import Listen

        listening = [Listen(model, corpus, config)]
        log(listening[0].describe())
    budget = TimeBudget(
        config, n_batches, rows, first_batch=first, seconds_before=seconds_before,
        progress=float((model.run_state or {}).get("lr_progress") or 0.0),
    )
    if config.max_minutes:
        log(f"time budget: {config.max_minutes:g} min; the run plans as many of its {config.epochs} epochs as fit"
            + (" and anneals its learning rate over them" if config.lr_schedule == "cosine" else ""))
    lines = [EpochLog(recorder, config.epochs, log)] if verbose == 2 else []
    callbacks = [
        # Listen before the budget and the recorder: its seconds count in the epoch's,
        # and the recorder writes what it heard.
        ResetStates(train_plan, valid_plan, first), schedules, *listening, budget, nan_guard, recorder, *lines,
        *callbacks,
    ]
    # A run resumed mid-epoch first finishes that epoch (from batch `first`) in a fit
    # of its own, then fits the remaining epochs whole.
    legs = [(train_ds, len(rows), [])]
    if first:
        legs = [(train_ds.skip(first), len(rows), [EndAfterEpoch()]), (train_ds, len(rows) + 1, [])]
        model.build_metrics(train_ds.element_spec)  # for ResetStates to restore them
    started, interrupted = time.perf_counter(), False
    try:
        for dataset, initial_epoch, end in legs:
            if initial_epoch >= config.epochs or recorder.should_stop() or nan_guard.batch is not None:
                break
            model.fit(
                dataset,
                validation_data=valid_ds,
                initial_epoch=initial_epoch,
                epochs=config.epochs,
                shuffle=False,  # ordered batches: row i of batch k+1 continues row i of batch k
                callbacks=[*callbacks, *end],
                verbose=1 if verbose == 1 else 0,  # 2: EpochLog's lines instead of Keras'
            )
    except KeyboardInterrupt:
        # Finished epochs and mid-epoch checkpoints are kept; the batches after the last
        # checkpoint are lost.
        interrupted = True
    total = time.perf_counter() - started
    rows = recorder.rows
    if rows:
        plot_curves(rows, out / "curves.png", title=f"{Path(corpus.source).name}",
                    listen=listening[0].reference if listening else None,
                    kept=(recorder.best_epoch, config.best_by) if recorder.best_epoch else None)
    summary = {
        "data": corpus.source,
        "sample_rate": corpus.rate,
        "parameters": model.count_params(),
        "epochs": len(rows),
        # model.keras holds best_epoch: the lowest val_loss, or with best_by: listening the
        # lowest listen_distance (then best_listen_distance).
        "best_by": config.best_by,
        "best_epoch": recorder.best_epoch,
        "best_val_loss": rows[recorder.best_epoch - 1]["val_loss"] if recorder.best_epoch else None,
        "best_listen_distance": recorder.best if recorder.best_epoch and config.best_by == "listening" else None,
        "seconds_total": sum(r["seconds"] for r in rows),
        "seconds_this_session": total,
        "seconds_per_epoch": (sum(r["seconds"] for r in rows) / len(rows)) if rows else None,
        "stopped": (
            "interrupted" if interrupted
            else "nan" if nan_guard.batch
            else "budget" if budget.stopped
            else "early" if len(rows) < config.epochs
            else "epochs"
        ),
        "splits_mse": None,
        # The validation audio's own voiced and silent shares, beside history.csv's listen_* columns.
        "listen_validation": listening[0].reference if listening else None,
    }
    if recorder.best_epoch and not interrupted:
        best = load_model(out / "model.keras")
        summary["splits_mse"] = evaluate_model(best, corpus)
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if rows:
        log(
            f"{len(rows)} epochs" + (f" (as many as fit in max_minutes={config.max_minutes:g})" if budget.stopped else "")
            + f", {summary['seconds_total']:.1f} s of training "
            f"({summary['seconds_per_epoch']:.2f} s per epoch); "
            + _best_line(recorder, config)
        )
    summary["epochs_checkpointed"], summary["batches_checkpointed"] = recorder.checkpointed
    return RunResult(summary, nan_guard.batch is not None, interrupted)


