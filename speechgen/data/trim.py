"""Trimming an utterance's silent ends: the ``trim_silence`` / ``trim_margin`` settings.

With utterances kept apart, a long trailing silence is never followed by speech in
training (the stream's state is zeroed at the next utterance), so a sampled model that
enters it while free-running has no reason to leave it. Cutting each file's leading and
trailing silence down to a margin takes that trap out of the data (measured in
docs/generation.md); silences inside an utterance are kept. Phone labels are shifted
with the audio.
"""

import numpy as np


TRIM_BLOCK = 0.010  # seconds per energy block: the quality measures' 10-ms hop


def trim_of(top_db, margin):
    """``load_corpus``'s ``trim`` for the settings ``trim_silence`` / ``trim_margin``
    (None when ``top_db`` is 0: off; models saved before the setting never trimmed)."""
    return (float(top_db), float(margin)) if top_db > 0 else None


def sounding_span(audio, top_db, margin):
    """Where ``audio`` sounds: samples ``[first, last)`` from ``margin`` seconds before
    its first 10-ms block within ``top_db`` dB of its loudest block (mean power) to
    ``margin`` seconds after its last, clipped to the file; the whole file when no
    block has any power (all zeros). Read in chunks, so a long file costs no memory.
    """
    block = max(1, int(round(audio.rate * TRIM_BLOCK)))
    powers, rest = [], np.zeros(0, np.float32)
    for chunk in audio.chunks():
        x = np.concatenate([rest, chunk])
        whole = len(x) // block * block
        powers.append(np.mean(np.square(x[:whole].reshape(-1, block), dtype=np.float64), axis=1))
        rest = x[whole:]
    if len(rest):
        powers.append([np.mean(np.square(rest, dtype=np.float64))])
    power = np.concatenate(powers) if powers else np.zeros(0)
    if not power.size or power.max() <= 0:
        return 0, len(audio)
    sounding = np.flatnonzero(power >= power.max() * 10.0 ** (-top_db / 10.0))
    pad = int(round(margin * audio.rate))
    return max(0, int(sounding[0]) * block - pad), min(len(audio), (int(sounding[-1]) + 1) * block + pad)


def segments_within(segments, first, last):
    """Phone segments clipped to samples ``[first, last)`` and shifted to start there;
    segments wholly outside are dropped (the cut silence's ``h#``)."""
    kept = []
    for seg in segments:
        start, end = max(seg.start, first), min(seg.end, last)
        if end > start:
            kept.append(seg._replace(start=start - first, end=end - first))
    return kept
