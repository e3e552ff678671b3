"""tf.data pipelines for truncated backpropagation through time (TBPTT).

A split (one long file, or many utterances) is laid out as ``batch_size`` parallel
*rows*. Each row plays a queue of *streams* (contiguous stretches of one piece of
audio) chunk after chunk, ``seq_len`` steps per chunk; row ``i`` of batch ``k + 1``
continues row ``i`` of batch ``k`` unless a new stream starts there, which the
schedule's ``fresh`` flag marks so that row's LSTM state is zeroed first
(:class:`speechgen.callbacks.ResetStates`). State therefore never carries from one
utterance into another. One long file is cut into ``batch_size`` equal streams.

A *step* ``t`` of a stream starting at sample ``s`` reads ``window`` samples and
predicts the ``hop`` samples that follow::

    input  x[s + t*hop : s + t*hop + window]
    target x[s + t*hop + window : s + t*hop + window + hop]

Hosts read one contiguous block per row and batch (``seq_len * hop + window``
samples) from the memory-mapped file; the overlapping windows are made in the graph
by ``tf.signal.frame``, so nothing is materialised k-fold on the host and no copy of
the whole signal is ever made.
"""

import heapq
from dataclasses import dataclass

import numpy as np

from ..errors import SpeechgenError
from .framing import Framing


def keras_ops():
    """``keras.ops`` (imported late: the data modules do not need Keras to load)."""
    import keras

    return keras.ops


@dataclass(frozen=True)
class Schedule:
    """What every row of every batch reads.

    Attributes:
        piece: ``(n_batches, batch_size)`` index of the piece each row reads.
        start: ``(n_batches, batch_size)`` first sample (in the piece) of the chunk.
        fresh: ``(n_batches, batch_size)`` True where a new stream starts (zero state).
        framing: the :class:`speechgen.data.framing.Framing` of every chunk.
        coverage: share of the split's steps the schedule visits per epoch.
    """

    piece: np.ndarray
    start: np.ndarray
    fresh: np.ndarray
    framing: Framing
    coverage: float

    @property
    def window(self):
        return self.framing.window

    @property
    def hop(self):
        return self.framing.hop

    @property
    def seq_len(self):
        return self.framing.seq_len

    @property
    def block(self):
        """Samples one row of one batch reads."""
        return self.framing.block

    @property
    def n_batches(self):
        return self.piece.shape[0]

    @property
    def batch_size(self):
        return self.piece.shape[1]

    @property
    def cold(self):
        """Share of the scheduled chunks that start a stream inside a piece, from a
        zeroed state although the piece has audio before them (0 when every stream
        starts where its piece does)."""
        return float(np.mean(self.fresh & (self.start > 0)))

    def rows_to_reset(self, k):
        """The rows whose LSTM state must be zeroed before batch ``k`` (bool
        ``(batch_size,)``), or None when none: the one place the stream-reset rule
        lives. Batch 0 follows a full reset, so only later batches reset rows, those
        where a new stream (utterance) starts."""
        if 0 < k < self.n_batches and self.fresh[k].any():
            return self.fresh[k]
        return None



def plan(lengths, framing, batch_size, what="split", min_coverage=0.95):
    """Lay the pieces of a split (their ``lengths`` in samples) over ``batch_size`` rows
    of chunks of ``framing`` (a :class:`speechgen.data.framing.Framing`).

    Pieces are cut into contiguous streams and dealt to rows; every row then plays as
    many chunks as the shortest row has. The rest (and each piece's tail of fewer than
    ``seq_len`` steps) is left out and reported as ``coverage``. A stream that starts
    inside a piece starts from a zeroed state although its piece has context before it:
    such *cold* chunks are scored worse than they deserve and train the model from a
    state it never has in generation, so a layout is judged by its coverage times the
    share of its chunks that are not cold. The layouts tried, in order:

    - streams of at most ``cap`` chunks dealt longest first to the least-loaded row
      (LPT), ``cap`` starting at one row's fair share (so one long file becomes
      ``batch_size`` equal streams) and halving down to 1: shorter streams balance
      better but start cold more often;
    - the pieces' chunks laid end to end in order and cut into ``batch_size`` rows of
      equal length: full coverage, at most ``batch_size - 1`` cold starts.

    The first whose judged coverage reaches ``min_coverage`` is kept, else the best (the
    earliest among equals).
    """
    window, hop, seq_len = framing.window, framing.hop, framing.seq_len
    chunks = [framing.steps(n) // seq_len for n in lengths]
    share = sum(chunks) // batch_size
    if share == 0:
        need = batch_size * framing.span + window
        # Pieces count by the whole chunks they hold (a piece shorter than one adds
        # none), so many short utterances can fall short with more samples than ``need``.
        raise SpeechgenError(
            f"the {what} split has {sum(lengths)} samples in {len(lengths)} piece(s), too short "
            f"for batch_size {batch_size} x seq_len {seq_len} steps of hop {hop}: they make {sum(chunks)} "
            f"whole chunk(s) of {framing.span} samples, fewer than its {batch_size} rows (one piece "
            f"would need about {need}); give more audio or lower batch_size/seq_len"
        )
    all_steps = sum(framing.steps(n) for n in lengths)
    best = None
    for rows in _layouts(chunks, batch_size, share):
        n_batches = min(load for load, _, _ in rows)
        schedule = Schedule(*_lay_out(rows, n_batches, batch_size, framing.span), framing,
                            n_batches * batch_size * seq_len / all_steps)
        judged = schedule.coverage * (1.0 - schedule.cold)
        if best is None or judged > best[0] + 1e-9:
            best = (judged, schedule)
        if judged >= min_coverage:
            break
    return best[1]


def _layouts(chunks, batch_size, share):
    """The candidate layouts of :func:`plan`, in the order it tries them."""
    cap = share
    while True:
        yield _deal(chunks, cap, batch_size)
        if cap == 1:
            break
        cap = max(1, cap // 2)
    yield _end_to_end(chunks, batch_size, share)


def _lay_out(rows, n_batches, batch_size, span):
    """``(piece, start, fresh)`` arrays ``(n_batches, batch_size)`` of dealt rows."""
    piece = np.zeros((n_batches, batch_size), np.int64)
    start = np.zeros((n_batches, batch_size), np.int64)
    fresh = np.zeros((n_batches, batch_size), bool)
    for _, r, queue in rows:
        k = 0
        # Within a row, streams play in piece order so a file's streams stay in time order.
        for n, p, first in sorted(queue, key=lambda s: (s[1], s[2])):
            for j in range(n):
                if k == n_batches:
                    break
                piece[k, r], start[k, r], fresh[k, r] = p, (first + j) * span, j == 0
                k += 1
    return piece, start, fresh


def _deal(chunks, cap, batch_size):
    """Cut pieces into streams of <= cap chunks; deal them longest first (LPT).

    Returns rows sorted by row index as ``(load, row, [(n_chunks, piece, first), ...])``.
    """
    streams = [
        (min(cap, c - first), p, first) for p, c in enumerate(chunks) for first in range(0, c, cap)
    ]
    streams.sort(key=lambda s: (-s[0], s[1], s[2]))
    rows = [(0, r, []) for r in range(batch_size)]
    heapq.heapify(rows)
    for stream in streams:
        load, r, queue = heapq.heappop(rows)
        queue.append(stream)
        heapq.heappush(rows, (load + stream[0], r, queue))
    return sorted(rows, key=lambda row: row[1])


def _end_to_end(chunks, batch_size, length):
    """The pieces' chunks in order, cut into ``batch_size`` rows of ``length`` chunks (the
    last ``sum(chunks) - batch_size * length`` left out); rows as :func:`_deal`'s."""
    queues = [[] for _ in range(batch_size)]
    r = load = 0
    for p, c in enumerate(chunks):
        first = 0
        while first < c and r < batch_size:
            n = min(c - first, length - load)
            queues[r].append((n, p, first))
            first, load = first + n, load + n
            if load == length:
                r, load = r + 1, 0
    return [(sum(n for n, _, _ in q), r, q) for r, q in enumerate(queues)]


class _Dithered:
    """A piece read with Gaussian noise of ``sigma`` added, drawn from ``seed`` (a
    sequence): one read per row, so the row's inputs and targets share one draw."""

    def __init__(self, piece, sigma, seed):
        self.piece, self.sigma, self.seed = piece, sigma, seed

    def read(self, start, stop):
        x = self.piece.read(start, stop)
        return x + np.random.default_rng(self.seed).normal(0.0, self.sigma, len(x)).astype(np.float32)


def split_batches(corpus, split, normaliser, framing, batch_size, phones=None, max_batches=0, quantise=None,
                  joined=False, dither=None):
    """The TBPTT dataset and schedule of one split.

    Args:
        corpus: a :class:`speechgen.corpus.Corpus`.
        split: ``train``, ``valid`` or ``test``.
        normaliser: a :class:`speechgen.corpus.Normaliser`.
        framing: a :class:`speechgen.data.framing.Framing`.
        batch_size: rows.
        phones: ``(inventory, folding, context)`` for phone-conditioned models, or None.
        max_batches: cap on batches (0: all).
        quantise: ``(levels, scheme)`` to give targets as class ids (categorical heads).
        joined: play the split's utterances back to back as one stream
            (speechgen.data.joined; the ``utterances: joined`` setting).
        dither: ``(sigma, seed)``: add Gaussian noise of ``sigma`` (file units) to the
            audio as it is read (the ``dither`` setting; :func:`tbptt_dataset`).
    """
    pieces = corpus.splits[split]
    if not pieces:
        raise SpeechgenError(f"{corpus.source}: the {split} split is empty; give more audio or change split")
    if joined:
        from .joined import join

        if phones is not None:
            from .phones import tracks_for

            # Checked per utterance first, so a bad label names its own .PHN file.
            tracks_for(pieces, phones[0], phones[1])
        pieces = join(pieces)
    try:
        schedule = plan([len(p) for p in pieces], framing, batch_size, split)
    except SpeechgenError as err:
        raise SpeechgenError(f"{corpus.source}: {err}") from None
    tracks, context = None, 1
    if phones is not None:
        from .phones import tracks_for

        inventory, folding, context = phones
        tracks = tracks_for(pieces, inventory, folding)
    dataset = tbptt_dataset(pieces, normaliser, schedule, tracks, context, max_batches=max_batches, quantise=quantise,
                            dither=dither)
    return dataset, schedule


def tbptt_dataset(
    pieces, normaliser, schedule, tracks=None, context=1, first_batch=0, max_batches=0, quantise=None, dither=None
):
    """Batches of a schedule, in order.

    Args:
        pieces: the split's :class:`speechgen.corpus.Piece` list.
        normaliser: applied to every block as it is read.
        schedule: a :class:`Schedule` planned for ``pieces``.
        tracks: per-piece :class:`speechgen.conditioning.PhoneTrack` (phone-conditioned
            models), or None.
        context: phone ids per step (1 or 3).
        first_batch: start at this batch (resuming mid-epoch).
        max_batches: stop after this many batches (0: all).
        quantise: ``(levels, scheme)``: targets become int32 class ids.
        dither: ``(sigma, seed)`` or None: Gaussian noise of ``sigma`` in the file's
            units is added to each block's samples before normalisation, inputs and
            targets alike, so digital silence (exact zeros) becomes a noise floor the
            model cannot predict with certainty. The draw is seeded by ``seed``, the
            batch and the row: every epoch (and a resumed one) reads the same audio.
    Returns:
        ``tf.data.Dataset`` of ``(inputs, targets)``: float32 ``targets (B, seq_len,
        hop)`` (int32 class ids with ``quantise``); ``inputs`` is ``frames (B,
        seq_len, window + lookahead)`` float32 (the schedule's framing), or, with tracks, ``(frames, phones (B,
        seq_len, context) int32)``.
    """
    import tensorflow as tf

    from .quantise import quantise as quantise_classes

    s = schedule
    B, block = s.batch_size, s.block
    last = s.n_batches if not max_batches else min(s.n_batches, first_batch + max_batches)

    def source(k, r, p):
        return pieces[p] if dither is None else _Dithered(pieces[p], dither[0], (dither[1], k, r))

    def read_blocks(k):
        k = int(k)
        # Normalised row by row: pre-emphasis reads the sample before each block.
        return np.stack([normaliser.read(source(k, r, p), st, st + block)
                         for r, (p, st) in enumerate(zip(s.piece[k], s.start[k]))])

    def read_phones(k):
        k = int(k)
        return np.stack([
            tracks[p].step_ids(st + s.window, s.seq_len, s.hop, context)
            for p, st in zip(s.piece[k], s.start[k])
        ])

    def frame(blocks):
        inputs, targets = s.framing.frame(tf.ensure_shape(blocks, (B, block)))
        if quantise is not None:
            targets = quantise_classes(targets, *quantise, ops=keras_ops())
        return inputs, targets

    def load(k):
        inputs, targets = frame(tf.numpy_function(read_blocks, [k], tf.float32, stateful=False))
        if tracks is None:
            return inputs, targets
        phones = tf.numpy_function(read_phones, [k], tf.int32, stateful=False)
        return (inputs, tf.ensure_shape(phones, (B, s.seq_len, context))), targets

    ds = tf.data.Dataset.range(first_batch, last)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
