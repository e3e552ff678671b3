"""``evaluate --intelligibility``: does a phone-conditioned model say the phones it is given?

For each test utterance (the valid split when test is empty) of the model's corpus, or
of the corpus folder given, the model generates the utterance from its own ``.PHN``
timeline, primed with the recording's first ``window`` samples, exactly as ``sample``
does for a held-out utterance (:func:`speechgen.sample.timeline_steps`), and, in a
second stream of the same run, from a **control** timeline: the same segments with the
phones of the non-silent ones permuted (seeded). The recogniser then transcribes the
real recording, the generated audio and the control, and each is scored against the
labels (:mod:`speechgen.measures.intelligibility`), with MCD-DTW of the generated and
the control audio against the recording.
"""

import numpy as np

from .data.corpus import Normaliser
from .errors import SpeechgenError


def judged_pieces(corpus):
    """``(split, pieces)``: the test utterances, or valid's when test is empty."""
    for split in ("test", "valid"):
        if corpus.splits[split]:
            return split, corpus.splits[split]
    raise SpeechgenError(f"{corpus.source}: no test or valid utterances to judge")


def intelligibility_report(model, corpus, utterances=None, temperature=None, seed=0, progress=None,
                           recogniser=None):
    """Generate and judge ``utterances`` (None: all) test utterances of ``corpus``.

    Args:
        temperature: categorical heads' softmax temperature (None: 1).
        seed: seeds the draws and the control's permutation (per utterance ``seed + k``).
        progress: called as ``progress(done, total)`` after each utterance.
        recogniser: a :class:`speechgen.measures.intelligibility.Recogniser` (made here if None).
    Returns:
        dict: ``split``, ``rows`` (one per utterance, :func:`score_utterance` plus
        ``name``), ``summary`` (:func:`summarise`).
    """
    from .data.phones import PhoneTrack, labelled_segments, model_inventory
    from .generate import Generator
    from .measures.intelligibility import Recogniser, score_utterance, shuffled_segments, summarise
    from .sample import generation_settings, timeline_steps

    if not model.phones:
        raise SpeechgenError("the model is not phone-conditioned; --intelligibility needs a model trained with phones")
    if not corpus.labelled:
        raise SpeechgenError(f"{corpus.source}: --intelligibility needs .PHN labels beside every utterance")
    split, pieces = judged_pieces(corpus)
    pieces = pieces[:utterances] if utterances else pieces
    temperature, sigma = generation_settings(model, temperature)
    recogniser = recogniser or Recogniser()
    generator = Generator(model, streams=2, noise=sigma, seed=seed, temperature=temperature)
    normaliser = Normaliser.from_dict(model.normaliser)
    inventory, folding = model_inventory(model)
    w, rows = model.window, []
    for k, piece in enumerate(pieces):
        segments = labelled_segments(piece, folding)
        prime = normaliser.apply(piece.read(0, w))
        plans = [
            timeline_steps(model, PhoneTrack(s, len(piece), inventory, piece.labels), len(piece), prime, piece.name)
            for s in (segments, shuffled_segments(segments, seed + k))
        ]
        n_samples = plans[0][2]
        out = generator.generate(np.stack([prime, prime]), n_samples - w, phones=np.stack([p[1] for p in plans]))
        generated, control = (normaliser.invert(np.concatenate([prime, o])) for o in out)
        row = score_utterance(
            recogniser, [s.phone for s in piece.segments], piece.read(0, n_samples), generated, control,
            model.sample_rate,
        )
        rows.append({"name": piece.name, **row})
        if progress:
            progress(k + 1, len(pieces))
    return {"split": split, "rows": rows, "summary": summarise(rows)}
