"""Training: data -> model -> fit with TBPTT callbacks -> a complete run directory.

A run directory (docs/design.md) holds ``model.keras`` (best by val_loss,
self-contained), ``checkpoint.keras`` (last epoch, with optimizer state),
``config.yaml`` (resolved), ``history.csv``, ``curves.png`` and ``summary.json``.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .config import dump_config
from .corpus import Normaliser, load_corpus
from .errors import SpeechgenError
from .files import write_text

RUN_FILES = ("model.keras", "checkpoint.keras", "config.yaml", "history.csv", "curves.png", "summary.json")


@dataclass
class RunResult:
    """What a finished run reports (also written to ``summary.json``)."""

    summary: dict
    stopped_by_nan: bool


def prepare_run_dir(out, force=False):
    """Create ``out``, refusing to overwrite an existing run unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpeechgenError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpeechgenError(
            f"{out}: already holds files (a previous run?); choose another --out or pass --force"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SpeechgenError(f"{out}: cannot write there ({err.strerror})") from None
    if force:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    return out


def train(data, out, config, force=False, verbose=1, log=print, callbacks=()):
    """Train a model on ``data`` and write the run directory ``out``.

    Args:
        data: a WAV/SPHERE file.
        out: run directory (created; must be empty unless ``force``).
        config: a resolved :class:`speechgen.config.Config`.
        verbose: Keras progress (1 = a bar per epoch, 2 = a line per epoch, 0 = none).
        log: where progress lines go.
        callbacks: extra Keras callbacks (run after speechgen's own).
    Returns:
        :class:`RunResult`.
    Raises:
        SpeechgenError: bad data, data too short for the config, unwritable output.
    """
    # Validate everything that can fail before creating anything on disk.
    corpus = load_corpus(data, config.split, config.seed)
    normaliser = Normaliser.fit(config.normalisation, corpus.splits["train"])
    from .conditioning import CONTEXTS, folding_table, inventory_of
    from .pipeline import split_batches

    phones, inventory = None, None
    if config.phones != "none":
        folding = folding_table(config.phone_folding)
        inventory = inventory_of(corpus.splits["train"], folding)
        phones = (inventory, folding, CONTEXTS[config.phones])
    framing = (config.window, config.hop, config.seq_len)
    train_ds, train_plan = split_batches(
        corpus, "train", normaliser, framing, config.batch_size, phones, config.max_batches
    )
    valid_ds, valid_plan = split_batches(
        corpus, "valid", normaliser, framing, config.batch_size, phones, config.max_batches
    )
    out = prepare_run_dir(out, force)

    import keras

    from .callbacks import ResetStates, RunRecorder, StopOnNaN
    from .evaluate import evaluate_model
    from .model import build_model, load_model, make_optimizer
    from .plots import plot_curves

    splits = {"layout": corpus.layout, **corpus.split_names()} if corpus.layout != "file" else None
    model = build_model(
        config, corpus.rate, normaliser, corpus.source,
        phones=inventory.to_list() if inventory else None, splits=splits,
    )
    model.compile(optimizer=make_optimizer(config), loss="mse")
    write_text(out / "config.yaml", dump_config(config))
    log(
        f"training on {corpus.source}: {corpus.seconds('train'):.1f} s train, "
        f"{corpus.seconds('valid'):.1f} s valid, {corpus.seconds('test'):.1f} s test at "
        f"{corpus.rate} Hz; {model.count_params():,} parameters; "
        f"{len(train_ds)} batches of {config.batch_size} streams x {config.seq_len} steps per epoch "
        f"({train_plan.coverage:.0%} of the training steps)"
        + (f"; {len(inventory)} phones ({config.phones})" if inventory else "")
    )
    for note in corpus.notes:
        log(f"note: {note}")
    recorder, nan_guard = RunRecorder(out), StopOnNaN()
    callbacks = [ResetStates(train_plan.fresh, valid_plan.fresh), nan_guard, recorder, *callbacks]
    if config.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            )
        )
    started = time.perf_counter()
    model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=config.epochs,
        shuffle=False,  # ordered batches: row i of batch k+1 continues row i of batch k
        callbacks=callbacks,
        verbose=verbose,
    )
    total = time.perf_counter() - started
    rows = recorder.rows
    if rows:
        plot_curves(rows, out / "curves.png", title=f"{Path(corpus.source).name}")
    summary = {
        "data": corpus.source,
        "sample_rate": corpus.rate,
        "parameters": model.count_params(),
        "epochs": len(rows),
        "best_epoch": recorder.best_epoch,
        "best_val_loss": recorder.best if recorder.best_epoch else None,
        "seconds_total": total,
        "seconds_per_epoch": (sum(r["seconds"] for r in rows) / len(rows)) if rows else None,
        "stopped": "nan" if nan_guard.batch else ("early" if len(rows) < config.epochs else "epochs"),
        "splits_mse": None,
    }
    if recorder.best_epoch:
        best = load_model(out / "model.keras")
        summary["splits_mse"] = evaluate_model(best, corpus)
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if rows:
        log(
            f"{len(rows)} epochs in {total:.1f} s ({summary['seconds_per_epoch']:.2f} s per epoch); "
            + (
                f"best val_loss {recorder.best:.6g} at epoch {recorder.best_epoch}"
                if recorder.best_epoch
                else "no finite val_loss"
            )
        )
    return RunResult(summary, nan_guard.batch is not None)


def nan_message(result, out):
    """The one-line explanation of a run stopped by a non-finite loss."""
    best = result.summary["best_epoch"]
    kept = (
        f"the best model (epoch {best}) is kept in {Path(out) / 'model.keras'}"
        if best
        else "no epoch finished with a finite loss, so no model was saved"
    )
    return (
        f"training stopped: the loss became NaN/infinite (diverged); {kept}. "
        "Lower learning_rate or clip gradients harder (--set clipnorm=0.5)."
    )
