"""tf.data pipelines for truncated backpropagation through time (TBPTT).

A split is cut into ``batch_size`` parallel *streams*: contiguous stretches of equal
length. Batch ``k`` holds, for every stream ``i``, its chunk ``k`` of ``seq_len``
consecutive steps, so row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``
and a stateful LSTM can carry its state across batches. One epoch is one pass over the
streams.

A *step* ``t`` reads ``window`` samples starting at ``t * hop`` and its target is the
``hop`` samples that follow them::

    input  x[t*hop : t*hop + window]
    target x[t*hop + window : t*hop + window + hop]

Hosts read one contiguous block per row and batch (``seq_len * hop + window``
samples) from the memory-mapped file; the overlapping windows are made afterwards by
``tf.signal.frame`` inside the graph, so nothing is materialised k-fold on the host
and no copy of the whole signal is ever made.
"""

from dataclasses import dataclass

import numpy as np

from .errors import SpeechgenError


@dataclass(frozen=True)
class StreamLayout:
    """Where each stream of one piece starts and how many batches an epoch has.

    Attributes:
        starts: first sample of each stream, relative to the piece, shape (batch_size,).
        n_batches: batches per epoch (chunks of ``seq_len`` steps per stream).
        window, hop, seq_len: the framing, in samples / steps.
    """

    starts: tuple
    n_batches: int
    window: int
    hop: int
    seq_len: int

    @property
    def block(self):
        """Samples one row of one batch reads."""
        return self.seq_len * self.hop + self.window

    @classmethod
    def plan(cls, n_samples, window, hop, seq_len, batch_size, what="split"):
        """Lay ``batch_size`` streams over ``n_samples`` samples.

        The tail that does not fill a whole chunk in every stream is left out (at most
        ``batch_size * seq_len`` steps).
        """
        n_steps = max(0, (n_samples - window) // hop)
        per_stream = n_steps // batch_size
        n_batches = per_stream // seq_len
        if n_batches == 0:
            need = batch_size * seq_len * hop + window
            raise SpeechgenError(
                f"the {what} split has {n_samples} samples, too short for batch_size "
                f"{batch_size} x seq_len {seq_len} steps of hop {hop} (needs {need}); "
                "give more audio or lower batch_size/seq_len"
            )
        starts = tuple(i * per_stream * hop for i in range(batch_size))
        return cls(starts, n_batches, window, hop, seq_len)


def tbptt_dataset(piece, normaliser, layout, first_batch=0):
    """A dataset of ``(inputs, targets)`` batches over one piece, in TBPTT order.

    Args:
        piece: a :class:`speechgen.corpus.Piece`.
        normaliser: applied to every block as it is read.
        layout: a :class:`StreamLayout` planned for ``len(piece)``.
        first_batch: start at this batch (resuming mid-epoch).
    Returns:
        ``tf.data.Dataset`` of float32 ``inputs (B, seq_len, window)`` and
        ``targets (B, seq_len, hop)``, ``layout.n_batches - first_batch`` batches.
    """
    import tensorflow as tf

    starts = np.asarray(layout.starts, dtype=np.int64)
    block, span = layout.block, layout.seq_len * layout.hop

    def read_blocks(k):
        # One contiguous read per stream: rows are (B, block) float32, normalised.
        offset = int(k) * span
        rows = [piece.read(s + offset, s + offset + block) for s in starts]
        return normaliser.apply(np.stack(rows))

    def frame(blocks):
        blocks = tf.ensure_shape(blocks, (len(starts), block))
        w, h = layout.window, layout.hop
        inputs = tf.signal.frame(blocks[:, : block - h], w, h, axis=-1)
        targets = tf.signal.frame(blocks[:, w:], h, h, axis=-1)
        return inputs, targets

    ds = tf.data.Dataset.range(first_batch, layout.n_batches)
    ds = ds.map(lambda k: tf.numpy_function(read_blocks, [k], tf.float32, stateful=False))
    ds = ds.map(frame, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def split_dataset(corpus, split, normaliser, config):
    """The TBPTT dataset and layout of one split of a single-file corpus."""
    pieces = corpus.splits[split]
    if not pieces:
        raise SpeechgenError(f"the {split} split is empty; change split fractions")
    piece = pieces[0]
    layout = StreamLayout.plan(
        len(piece), config.window, config.hop, config.seq_len, config.batch_size, split
    )
    return tbptt_dataset(piece, normaliser, layout), layout
