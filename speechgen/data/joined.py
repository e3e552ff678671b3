"""A split's utterances played back to back as one stream (``utterances: joined``).

By default (``separate``) every utterance of a corpus folder is its own stream: the
LSTM state is zeroed where it starts, as write-up 2 trained on TIMIT. A model trained
that way never sees what follows the silence at an utterance's end (the stream ends
there), so when it generates freely that silence has no way out: the speech recipe's
free-running audio was half silent against 7 % for real speech (docs/generation.md).
``joined`` lays the split's utterances end to end, in the split's (sorted) order, as
one long recording would be, so the state carries across each boundary and the model
learns that speech follows a pause. SampleRNN trains this way: it concatenates its
corpus and cuts it into fixed chunks.

The joined stream is one :class:`Piece` over a :class:`JoinedAudio`; the TBPTT
schedule then cuts it into ``batch_size`` equal streams like one long file
(speechgen.data.pipeline.plan). Phone labels are joined too, offset to the stream.
"""

import numpy as np

from .corpus import Piece


class JoinedAudio:
    """The samples of ``pieces`` end to end: ``read(start, stop)`` spans boundaries.

    Args:
        pieces: :class:`speechgen.data.corpus.Piece` list, in playing order.
    Attributes:
        offsets: ``(len(pieces) + 1,)`` int64, where each piece starts in the stream
            (the last entry is the total length in samples).
    """

    def __init__(self, pieces):
        self.pieces = list(pieces)
        self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in self.pieces])]).astype(np.int64)
        self.rate = self.pieces[0].audio.rate
        # For messages that name "the file": the first utterance's (see Piece.labels).
        self.path = self.pieces[0].audio.path

    def __len__(self):
        return int(self.offsets[-1])

    def read(self, start=0, stop=None):
        """Samples ``[start, stop)`` of the joined stream, float32, shape ``(stop - start,)``."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = max(0, start)
        if stop <= start:
            return np.zeros(0, np.float32)
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        last = int(np.searchsorted(self.offsets, stop, side="left")) - 1
        parts = []
        for i in range(first, last + 1):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            a, b = max(start, lo) - lo, min(stop, hi) - lo
            if b > a:
                parts.append(self.pieces[i].read(int(a), int(b)))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def segments(self):
        """The pieces' phone segments shifted to stream time, or None if any piece has
        no labels. Segments are the pieces' own (file-relative, whole-file pieces)."""
        if any(p.segments is None for p in self.pieces):
            return None
        shifted = []
        for piece, offset in zip(self.pieces, self.offsets[:-1]):
            shifted.extend(seg._replace(start=seg.start + int(offset), end=seg.end + int(offset))
                           for seg in piece.segments)
        return shifted


def join(pieces):
    """``pieces`` as one :class:`Piece` over their :class:`JoinedAudio` (a list of one),
    or ``pieces`` unchanged when there are fewer than two."""
    if len(pieces) < 2:
        return list(pieces)
    audio = JoinedAudio(pieces)
    return [Piece(audio, 0, len(audio), f"{len(pieces)} utterances joined", audio.segments(), pieces[0].labels)]
