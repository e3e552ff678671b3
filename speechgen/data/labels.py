"""TIMIT-style phone labels: ``.PHN`` segments, inventories, folding.

A ``.PHN`` file has one segment a line, ``start end phone``, in samples, ``end``
exclusive::

    0 2400 h#
    2400 4544 sh

Policies:

* **Gaps** are allowed: a segment may start after the previous one ends, and the labels
  need not cover the audio from sample 0 to its end. :class:`speechgen.data.phones.PhoneTrack`
  labels every uncovered sample (before the first segment, between segments, after the last)
  with the fill symbol, ``h#`` by default, TIMIT's own silence symbol. Overlapping or
  out-of-order segments are errors.
* **Silence** is ``h#`` everywhere, also after folding: :data:`TIMIT_FOLD_39` maps
  ``pau``, ``epi`` and the stop closures to ``h#`` (Lee & Hon's ``sil``), so the default
  fill symbol is the same for raw and folded TIMIT labels and for CMU-style corpora
  that already use ``h#``.
* **q** (glottal stop) has no class of its own in the 39-phone set; the common practice
  is to delete it. Deleting it from a sample-level labelling would leave a hole, so
  :func:`fold_segments` gives its samples to a neighbour instead: to the segment before
  it when they touch, else to the one after it when they touch, else the samples become
  a gap (filled with ``h#``). :func:`fold_phone` returns None for it.
"""

import re
from pathlib import Path
from typing import NamedTuple

from ..errors import SpeechgenError

FILL = "h#"

_INT = re.compile(rb"-?[0-9]+")


class Segment(NamedTuple):
    """One labelled stretch of audio: samples ``[start, end)`` carry ``phone``."""

    start: int
    end: int
    phone: str


def read_phn(path, n_samples=None):
    """Read a ``.PHN`` file.

    Args:
        path: the label file.
        n_samples: length of the matching audio in samples; when given, no segment may
            end after it.
    Returns:
        list of :class:`Segment`, in file order (which must be time order); gaps allowed.
    Raises:
        SpeechgenError: missing/unreadable or empty file; a line without exactly three
        fields, with a non-integer or negative number, with ``end <= start``, that
        overlaps or precedes the previous segment, or that ends past ``n_samples``.
    """
    path = Path(path)
    data = _read_bytes(path)
    segments = []
    previous_line = 0
    # Split bytes on ASCII whitespace only: str.split would also split on exotic Unicode
    # separators, and a decoding error could not be given a line number.
    for number, line in enumerate(data.split(b"\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {number}"
        if len(fields) != 3:
            raise SpeechgenError(
                f"{where}: expected 'start end phone', got {len(fields)} fields"
            )
        start = _sample(where, "start", fields[0])
        end = _sample(where, "end", fields[1])
        phone = _text(where, fields[2], "phone")
        if end <= start:
            problem = "is empty" if end == start else "ends before it starts"
            raise SpeechgenError(f"{where}: segment {start}-{end} {problem}")
        if segments:
            prev = segments[-1]
            if start < prev.start:
                raise SpeechgenError(
                    f"{where}: segment {start}-{end} starts before the previous one "
                    f"(line {previous_line}, {prev.start}-{prev.end}); segments must be "
                    "in time order"
                )
            if start < prev.end:
                raise SpeechgenError(
                    f"{where}: segment {start}-{end} overlaps the previous one "
                    f"(line {previous_line}, {prev.start}-{prev.end})"
                )
        if n_samples is not None and end > n_samples:
            raise SpeechgenError(
                f"{where}: segment ends at sample {end} but the audio has "
                f"{n_samples} samples"
            )
        segments.append(Segment(start, end, phone))
        previous_line = number
    if not segments:
        raise SpeechgenError(f"{path}: no segments (empty label file)")
    return segments


class PhoneInventory:
    """The phones a model knows, each with a fixed integer id (its position).

    Build it from the training labels with :meth:`from_segments`; save
    :meth:`to_list` in the model config and rebuild with :meth:`from_list`, so the ids
    at generation time are the ids the model was trained with.
    """

    def __init__(self, phones):
        phones = list(phones)
        bad = [p for p in phones if not isinstance(p, str) or not p or p.split() != [p]]
        if bad:
            raise SpeechgenError(
                f"phone inventory: {bad[0]!r} is not a phone (a non-empty word)"
            )
        if len(set(phones)) != len(phones):
            dup = next(p for p in phones if phones.count(p) > 1)
            raise SpeechgenError(f"phone inventory: {dup!r} is listed twice")
        if not phones:
            raise SpeechgenError("phone inventory: no phones")
        self._phones = tuple(phones)
        self._ids = {p: i for i, p in enumerate(phones)}

    @classmethod
    def from_segments(cls, segment_lists, fill=FILL):
        """Every phone in ``segment_lists`` (an iterable of segment lists) plus ``fill``,
        sorted, so the same labels always give the same ids."""
        phones = {fill}
        for segments in segment_lists:
            phones.update(s.phone for s in segments)
        return cls(sorted(phones))

    @classmethod
    def from_list(cls, phones):
        """Rebuild from :meth:`to_list`'s output, keeping its order (the ids)."""
        if isinstance(phones, str) or not hasattr(phones, "__iter__"):
            raise SpeechgenError(f"phone inventory: expected a list of phones, got {phones!r:.60}")
        return cls(phones)

    def to_list(self):
        """The phones in id order, a plain list (JSON/YAML friendly)."""
        return list(self._phones)

    @property
    def phones(self):
        return list(self._phones)

    def index(self, phone, source=None):
        """The id of ``phone``; SpeechgenError naming ``source`` if it is unknown."""
        try:
            return self._ids[phone]
        except KeyError:
            shown = ", ".join(self._phones[:8]) + (", ..." if len(self) > 8 else "")
            raise SpeechgenError(
                f"{source or 'labels'}: phone {phone!r} is not in the phone inventory "
                f"({len(self)} phones: {shown}); add labels with it to the training data "
                "or fold it to a known phone"
            ) from None

    def __len__(self):
        return len(self._phones)

    def __contains__(self, phone):
        return phone in self._ids

    def __iter__(self):
        return iter(self._phones)

    def __eq__(self, other):
        return isinstance(other, PhoneInventory) and self._phones == other._phones

    def __repr__(self):
        return f"PhoneInventory({list(self._phones)!r})"


# Lee & Hon (1989): TIMIT's 61 phones folded to the 39 classes used for scoring, with
# silence written h# (see the module docstring) and q deleted (None). Phones not listed
# map to themselves, so CMU-style labels (already 39 phones) pass through unchanged.
TIMIT_FOLD_39 = {
    "ao": "aa",
    "ax": "ah",
    "ax-h": "ah",
    "axr": "er",
    "hv": "hh",
    "ix": "ih",
    "el": "l",
    "em": "m",
    "en": "n",
    "nx": "n",
    "eng": "ng",
    "zh": "sh",
    "ux": "uw",
    "pcl": FILL,
    "tcl": FILL,
    "kcl": FILL,
    "bcl": FILL,
    "dcl": FILL,
    "gcl": FILL,
    "pau": FILL,
    "epi": FILL,
    "h#": FILL,
    "q": None,
}


def fold_phone(phone, folding):
    """``phone`` after ``folding`` (a dict); unlisted phones are unchanged; None: deleted."""
    return folding.get(phone, phone)


def fold_segments(segments, folding):
    """Relabel ``segments`` with ``folding``; deleted phones (``None``, e.g. ``q``) give
    their samples to the touching segment before them, else to the touching one after,
    else leave a gap. Returns a new list; one segment fewer per deleted phone."""
    kept = []
    orphan = None  # a deleted segment at the front, waiting for the next kept one
    for seg in segments:
        phone = fold_phone(seg.phone, folding)
        if phone is None:
            if kept and kept[-1].end == seg.start:
                kept[-1] = kept[-1]._replace(end=seg.end)
            elif orphan is not None and orphan.end == seg.start:
                orphan = orphan._replace(end=seg.end)
            else:
                orphan = seg
            continue
        start = seg.start
        if orphan is not None and orphan.end == seg.start:
            start = orphan.start
        orphan = None
        kept.append(Segment(start, seg.end, phone))
    return kept


def _read_bytes(path):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SpeechgenError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpeechgenError(f"{path}: is a directory, expected a label file") from None
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot be read ({err.strerror or err})") from None


def _sample(where, name, token):
    """A sample index from a bytes token: ASCII digits, not negative."""
    if not _INT.fullmatch(token):
        shown = token.decode("utf-8", "replace")
        raise SpeechgenError(f"{where}: {name} {shown!r:.40} is not an integer sample index")
    value = int(token)
    if value < 0:
        raise SpeechgenError(f"{where}: {name} {value} is negative")
    return value


def _text(where, token, name):
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        raise SpeechgenError(f"{where}: {name} is not UTF-8 text") from None
