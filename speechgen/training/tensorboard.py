"""TensorBoard logging for a run: scalars every epoch, generated audio at checkpoints.

``speechgen train ... --tensorboard`` writes ``RUN/tensorboard/`` (view it with
``tensorboard --logdir RUN/tensorboard``): Keras' own loss/val_loss scalars (plus the
drift schedules' values), and, whenever a new best model is saved, a few seconds of
audio generated free-running from a held-out prime, so a user can *hear* whether the
model is learning, not only read a loss.
"""

from pathlib import Path

import keras
import numpy as np


class AudioSamples(keras.callbacks.Callback):
    """Log ``seconds`` of free-running audio at every new best ``val_loss``.

    Args:
        log_dir: the TensorBoard folder.
        prime: normalised priming audio, ``(samples,)`` (a held-out excerpt).
        normaliser: to write audio in the file's units.
        seconds: length of each clip.
    """

    def __init__(self, log_dir, prime, normaliser, seconds=2.0):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.prime, self.normaliser, self.seconds = prime, normaliser, seconds
        self.best = np.inf
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from ..generate import Generator

        value = (logs or {}).get("val_loss", np.nan)
        if not np.isfinite(value) or value >= self.best:
            return
        self.best = value
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "samples"))
        rate = self.model.sample_rate
        # A batch-1 copy with the current weights: the training model's state and
        # its streams are left alone.
        audio = Generator(self.model).generate(self.prime, int(self.seconds * rate))
        audio = np.clip(self.normaliser.invert(audio), -1.0, 1.0).astype(np.float32)
        with self._writer.as_default():
            tf.summary.audio("generated", audio[None, :, None], rate, step=epoch + 1,
                             description=f"{self.seconds:g} s free-running after a held-out prime, "
                                         f"epoch {epoch + 1}, val_loss {value:.6g}")
            tf.summary.scalar("best_val_loss", value, step=epoch + 1)
        self._writer.flush()


def tensorboard_callbacks(run, corpus, normaliser, framing, phones=False):
    """Keras' TensorBoard callback, and the audio callback for unconditioned models
    (primed with one training chunk of ``framing``, a
    :class:`speechgen.data.framing.Framing`, from the longest validation piece)."""
    log_dir = Path(run) / "tensorboard"
    callbacks = [keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, profile_batch=0)]
    pieces = corpus.splits["valid"] or corpus.splits["train"]
    want = framing.prime_samples()
    piece = max(pieces, key=len)
    if not phones and len(piece) >= framing.window:
        prime = normaliser.apply(piece.read(0, min(want, len(piece))))
        callbacks.append(AudioSamples(log_dir, prime, normaliser))
    return callbacks
