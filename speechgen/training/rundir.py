"""The run directory: creating it without overwriting, cleaning up an unfinished run,
the history file, and the messages a stopped run prints (docs/design.md)."""

import csv
from pathlib import Path

from ..errors import SpeechgenError


RUN_FILES = ("model.keras", "checkpoint.keras", "config.yaml", "history.csv", "curves.png", "summary.json")
RUN_FOLDERS = ("tensorboard", "epochs")
# history.csv's listening columns (speechgen.training.listen; NaN in epochs without a check).
LISTEN_KEYS = ("listen_q", "listen_voiced", "listen_silent", "listen_time", "listen_distance")


def prepare_run_dir(out, force=False):
    """Create ``out``, refusing to overwrite an existing run unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpeechgenError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpeechgenError(
            f"{out}: already holds files (a previous run?); choose another --out, "
            f"continue it with --resume {out}, or pass --force"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SpeechgenError(f"{out}: cannot write there ({err.strerror})") from None
    if force:
        remove_run_files(out)
    return out


def worker_dir():
    """A throwaway run directory for a non-chief worker of a multi-worker cluster.

    Every worker runs the same callbacks (checkpoints, history), which would race on a
    shared file system; only the chief's run directory is kept.
    """
    import tempfile

    return tempfile.TemporaryDirectory(prefix="speechgen-worker-")


def remove_run_files(out):
    import shutil

    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)


def discard_unfinished(out, fresh):
    """Remove a new run that holds no finished epoch: no partial output.

    ``out`` was empty (or cleared by --force) when the run began, so every run file in
    it is this run's. A run with a checkpoint stays, to be resumed.
    """
    if (out / "checkpoint.keras").exists():
        return
    remove_run_files(out)
    remove_temporaries(out)
    if fresh:
        try:
            out.rmdir()
        except OSError:
            pass


def remove_temporaries(out):
    """Remove the temporaries of writes that never finished (a run killed while
    saving); the files they were to replace are intact (speechgen.files)."""
    for tmp in out.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


def read_history(path):
    """The rows of a run's ``history.csv`` (epoch, loss, val_loss, seconds)."""
    try:
        with open(path, newline="") as f:
            rows = [
                {"epoch": int(r["epoch"]), "loss": float(r["loss"]),
                 "val_loss": float(r["val_loss"]), "seconds": float(r["seconds"]),
                 "sampling_p": float(r.get("sampling_p") or 0.0),
                 "input_noise": float(r.get("input_noise") or 0.0),
                 "learning_rate": float(r.get("learning_rate") or "nan"),
                 "bits": float(r.get("bits") or "nan"), "val_bits": float(r.get("val_bits") or "nan"),
                 **{key: float(r.get(key) or "nan") for key in LISTEN_KEYS}}
                for r in csv.DictReader(f)
            ]
    except FileNotFoundError:
        raise SpeechgenError(f"{path}: missing; the run cannot be resumed") from None
    except (KeyError, ValueError, TypeError):
        raise SpeechgenError(f"{path}: not a speechgen history file") from None
    if [r["epoch"] for r in rows] != list(range(1, len(rows) + 1)):
        raise SpeechgenError(f"{path}: epochs are not 1, 2, 3, ...; the history is damaged")
    return rows


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


def interrupt_message(result, out):
    """The one-line explanation of a run stopped by Ctrl-C."""
    epochs = result.summary["epochs_checkpointed"]
    batches = result.summary.get("batches_checkpointed", 0)
    if not epochs and not batches:
        return f"interrupted before the first epoch finished; nothing to resume in {out}"
    saved = "epoch 1" if epochs == 1 else f"epochs 1-{epochs}" if epochs else ""
    if batches:
        saved += f"{' and ' if epochs else ''}{batches} batches of epoch {epochs + 1}"
    verb = "is" if saved == "epoch 1" else "are"
    return (
        f"interrupted: {saved} {verb} saved ({Path(out) / 'checkpoint.keras'}); "
        f"continue with: speechgen train --resume {out}"
    )
