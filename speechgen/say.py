"""The ``say`` verb: text (or phones) -> a phone timeline -> a phone-conditioned model speaks it.

Text becomes CMU phones (:mod:`speechgen.data.pronounce`), mapped onto the model's
inventory, each lasting its median duration in the training corpus (the model's
``phone_durations``) divided by ``rate``, with silence at both ends and at pause marks.
The timeline then drives generation exactly as ``sample --phones`` does
(:func:`speechgen.sample.timeline_steps`): one window of silence primes the model, and
the WAV holds the whole timeline (that silent window, then the generated samples), so
sample ``t`` of the file is sample ``t`` of the timeline.
"""

import time

import numpy as np

from .data.audio import write_wav
from .data.corpus import Normaliser
from .errors import SpeechgenError, UsageError


def model_durations(model, model_path="MODEL"):
    """The model's ``phone_durations``; for a model saved without them, the medians of
    the corpus its ``train_config`` names (if it is still there)."""
    if model.phone_durations:
        return model.phone_durations
    from pathlib import Path

    from .data.corpus import reopen_corpus
    from .data.phones import median_durations, model_inventory

    data = (model.train_config or {}).get("data")
    if not data or not Path(data).exists():
        raise SpeechgenError(
            f"{model_path}: records no phone durations and its training data ({data}) is not there any more; "
            "retrain it with this speechgen version (which records them), or move the data back"
        )
    corpus = reopen_corpus(model.train_config)
    _, folding = model_inventory(model)
    return median_durations([p for s in corpus.splits.values() for p in s], folding, corpus.rate)


def say_timeline(model, text=None, phones=None, rate=1.0, model_path="MODEL"):
    """The segments (:class:`speechgen.data.labels.Segment`, in samples) that ``say``
    speaks for ``text`` or for ``phones`` (a string of the model's phones).

    Raises:
        UsageError: both or neither of text and phones, empty text, a bad rate.
        SpeechgenError: a model without phones, a word not in the dictionary, a phone
        the model does not know.
    """
    from .data.labels import PhoneInventory
    from .data.pronounce import model_phone_sequence, parse_phones, pronounce, timeline

    if (text is None) == (phones is None):
        raise UsageError("say needs TEXT or --phones \"PHONES\", not both" if text is not None
                         else "say needs TEXT (or --phones \"PHONES\")")
    if not rate > 0:
        raise UsageError(f"--rate must be above 0 (2 speaks twice as fast), got {rate:g}")
    if not model.phones:
        raise SpeechgenError(
            f"{model_path}: the model is not phone-conditioned, so it cannot say anything; train one with "
            "--set phones=current on a corpus with .PHN labels"
        )
    inventory = PhoneInventory.from_list(model.phones)
    items = pronounce(text) if text is not None else parse_phones(phones)
    sequence = model_phone_sequence(items, inventory, given=phones is not None)
    return timeline(sequence, model_durations(model, model_path), model.sample_rate, rate)


def say_to_wav(model_path, out, text=None, phones=None, rate=1.0, temperature=None, seed=0, progress=None):
    """Speak ``text`` (or ``phones``) with the model at ``model_path`` into the WAV ``out``.

    Returns:
        dict with rate, seconds, phones (the timeline's phones), segments, real_time_factor.
    """
    from .data.labels import PhoneInventory
    from .data.phones import PhoneTrack
    from .generate import Generator
    from .model import load_model
    from .sample import generation_settings, silence_prime, timeline_steps

    model = load_model(model_path)
    segments = say_timeline(model, text, phones, rate, model_path)
    temperature, sigma = generation_settings(model, temperature)
    length = segments[-1].end
    track = PhoneTrack(segments, length, PhoneInventory.from_list(model.phones), "text" if text else "--phones")
    prime, ids, n_samples, _ = timeline_steps(model, track, length, silence_prime(model), "the spoken timeline")
    generator = Generator(model, noise=sigma, seed=seed, temperature=temperature)

    def report(done, total, elapsed):
        if progress:
            progress(done, total, elapsed, done * model.hop / model.sample_rate / max(elapsed, 1e-9))

    started = time.perf_counter()
    generated = generator.generate(prime, n_samples - len(prime), phones=ids, progress=report)
    elapsed = time.perf_counter() - started
    audio = np.concatenate([prime, generated])
    write_wav(out, model.sample_rate, Normaliser.from_dict(model.normaliser).invert(audio))
    return {
        "rate": model.sample_rate,
        "seconds": len(audio) / model.sample_rate,
        "phones": [s.phone for s in segments],
        "segments": [tuple(s) for s in segments],
        "real_time_factor": len(generated) / model.sample_rate / max(elapsed, 1e-9),
    }
