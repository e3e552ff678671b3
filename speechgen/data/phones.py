"""Phone conditioning: which phone id each model step is told about.

A :class:`PhoneTrack` is one utterance's labels as contiguous segments covering every
sample (gaps filled with the fill phone, ``h#``), stored as segment arrays rather than
one id per sample, so memory grows with the number of segments, not of samples.

A step predicts target samples ``[a, a + hop)``; its phone is the phone covering most
of them (for ``hop == 1``: the phone of the predicted sample). With ``context`` the step
also gets the phones of the previous and next segments (write-up 2's course code used
previous/current/next), so each step carries ``C = 1`` or ``3`` ids. With
``context_position`` a fourth column tells how far the step is into its phone: the
fraction of the segment before the step's middle sample, in ``POSITIONS`` equal
buckets (0: the phone's first sixteenth), so a model can shape a phone's onset,
steady part and transition to the next one (``C = 4``).
"""

import numpy as np

from .labels import FILL

CONTEXTS = {"current": 1, "context": 3, "context_position": 4}
POSITIONS = 16  # buckets of the position within a phone (the last id column of C = 4)


def positions_of(context):
    """Position buckets in the id columns of a model with ``context`` ids per step."""
    return POSITIONS if context == CONTEXTS["context_position"] else 0


class PhoneTrack:
    """Segments ``[starts[j], ends[j])`` with phone ids ``ids[j]`` tiling ``[0, n)``.

    Args:
        segments: validated :class:`speechgen.labels.Segment` list (time order).
        n_samples: audio length.
        inventory: :class:`speechgen.labels.PhoneInventory`.
        source: label file, for error messages.
    """

    def __init__(self, segments, n_samples, inventory, source=None):
        fill = inventory.index(FILL, source)
        starts, ids, pos = [], [], 0

        def add(start, phone_id):
            # Touching segments of one phone (folded closures next to h#, a gap beside
            # h#) are one segment, so "previous" and "next" name a different phone.
            if not ids or ids[-1] != phone_id:
                starts.append(start)
                ids.append(phone_id)

        for seg in segments:
            if seg.start > pos:  # a gap: silence
                add(pos, fill)
            add(seg.start, inventory.index(seg.phone, source))
            pos = seg.end
        if pos < n_samples:
            add(pos, fill)
        self.starts = np.asarray(starts, np.int64)
        self.ends = np.append(self.starts[1:], max(pos, n_samples))
        self.ids = np.asarray(ids, np.int32)
        self.fill = fill

    def segment_at(self, positions):
        """Index of the segment holding each sample position (any shape)."""
        return np.searchsorted(self.starts, positions, side="right") - 1

    def step_ids(self, first_target, n_steps, hop, context=1):
        """Phone ids of ``n_steps`` consecutive steps.

        Args:
            first_target: sample index of the first step's first target sample.
            n_steps: steps.
            hop: target samples per step.
            context: 1 (current phone), 3 (previous, current, next) or 4 (those
                and the position bucket, ``0 .. POSITIONS - 1``, within the current one).
        Returns:
            int32 array ``(n_steps, context)``.
        """
        a = first_target + hop * np.arange(n_steps)
        if hop == 1:
            seg = self.segment_at(a)
        else:
            # Majority over [a, a + hop): the segment overlapping it most.
            first, last = self.segment_at(a), self.segment_at(a + hop - 1)
            seg = first.copy()
            for i in np.nonzero(first != last)[0]:
                cand = np.arange(first[i], last[i] + 1)
                overlap = np.minimum(self.ends[cand], a[i] + hop) - np.maximum(self.starts[cand], a[i])
                seg[i] = cand[np.argmax(overlap)]
        current = self.ids[seg]
        if context == 1:
            return current[:, None]
        n = len(self.ids)
        prev = np.where(seg > 0, self.ids[np.maximum(seg - 1, 0)], self.fill)
        nxt = np.where(seg < n - 1, self.ids[np.minimum(seg + 1, n - 1)], self.fill)
        columns = [prev, current, nxt]
        if positions_of(context):
            # Where the step's middle lies in its segment, as a share of the segment.
            middle = a + (hop - 1) / 2
            share = (middle - self.starts[seg]) / np.maximum(self.ends[seg] - self.starts[seg], 1)
            columns.append(np.clip(np.floor(share * POSITIONS), 0, POSITIONS - 1))
        return np.stack(columns, axis=1).astype(np.int32)


def folding_table(name):
    """The phone folding named in a config: ``none`` or ``timit39``."""
    from .labels import TIMIT_FOLD_39

    return TIMIT_FOLD_39 if name == "timit39" else None


def labelled_segments(piece, folding=None):
    """A piece's segments after folding; an error if the piece has no labels."""
    from ..errors import SpeechgenError
    from .labels import fold_segments

    if piece.segments is None:
        raise SpeechgenError(
            f"{piece.audio.path}: no .PHN labels beside it, but the model is phone-conditioned "
            "(label every utterance, or train with --set phones=none)"
        )
    return fold_segments(piece.segments, folding) if folding else piece.segments


def inventory_of(pieces, folding=None):
    """The phone inventory of ``pieces`` (their labels, after folding): training uses
    every split's, so a phone only held-out speakers say still has an id."""
    from .labels import PhoneInventory

    return PhoneInventory.from_segments(labelled_segments(p, folding) for p in pieces)


def tracks_for(pieces, inventory, folding=None):
    """One :class:`PhoneTrack` per piece; unknown phones are errors naming the file."""
    return [
        PhoneTrack(labelled_segments(p, folding), len(p), inventory, p.labels) for p in pieces
    ]


def median_durations(pieces, folding, rate):
    """Each phone's median duration in seconds over the labelled segments of ``pieces``
    (after folding; touching segments of one phone, e.g. a folded closure beside
    ``h#``, count as one): what ``speechgen say`` gives each phone it speaks."""
    lengths = {}
    for piece in pieces:
        if piece.segments is None:
            continue
        previous = None
        for seg in labelled_segments(piece, folding):
            if previous is not None and previous.phone == seg.phone and previous.end == seg.start:
                lengths[seg.phone][-1] += seg.end - seg.start
            else:
                lengths.setdefault(seg.phone, []).append(seg.end - seg.start)
            previous = seg
    return {phone: float(np.median(n)) / rate for phone, n in sorted(lengths.items())}


# --- Phone timelines for a trained model: .PHN files or corpus pieces -> per-step ids ---


def model_inventory(model):
    """The phone inventory and folding a phone-conditioned model was trained with."""
    from .labels import PhoneInventory

    folding = folding_table((model.train_config or {}).get("phone_folding", "none"))
    return PhoneInventory.from_list(model.phones), folding


def model_phones(model):
    """``(inventory, folding, context)`` of a phone-conditioned model (what pipelines
    take), or None for a model without phones: the one place a trained model's phone
    set-up is rebuilt."""
    if not model.phones:
        return None
    return (*model_inventory(model), model.phone_context)


def track_from_file(model, phn_path, n_samples=None):
    """A :class:`PhoneTrack` for ``phn_path`` in the model's phone ids.

    Args:
        n_samples: the audio length; None for a timeline on its own (its length is
            the last segment's end).
    Raises:
        SpeechgenError: bad labels, or a phone the model does not know.
    """
    from ..errors import SpeechgenError
    from .labels import read_phn

    if not model.phones:
        raise SpeechgenError(f"{phn_path}: the model is not phone-conditioned; drop --phones")
    segments = read_phn(phn_path, n_samples)
    if not segments:
        raise SpeechgenError(f"{phn_path}: no segments")
    inventory, folding = model_inventory(model)
    if folding:
        from .labels import fold_segments

        segments = fold_segments(segments, folding)
    length = n_samples if n_samples is not None else segments[-1].end
    return PhoneTrack(segments, length, inventory, phn_path), length


def track_of_piece(model, piece):
    """A :class:`PhoneTrack` for a corpus piece (its own ``.PHN``)."""
    inventory, folding = model_inventory(model)
    return PhoneTrack(labelled_segments(piece, folding), len(piece), inventory, piece.labels)
