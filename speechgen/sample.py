"""The ``sample`` verb: load a model, choose priming audio (and phones), generate, write."""

import time

import numpy as np

from .data.audio import read_audio, write_wav
from .data.corpus import Normaliser, reopen_corpus
from .errors import SpeechgenError
from .generate import Generator, sequence_samples


def _held_out_pieces(model):
    """The test split's pieces (valid's if test is empty, train's if both are)."""
    corpus = reopen_corpus(model.train_config)
    for split in ("test", "valid", "train"):
        if corpus.splits[split]:
            return corpus, corpus.splits[split]
    raise SpeechgenError(f"{corpus.source}: no audio to prime with; give --prime")


def choose_prime(model, prime_path, prime_seconds, seed):
    """Normalised priming audio and a description of where it came from.

    Default source: the test split of the model's training data (falling back to
    valid, then train, when test is empty). The default length is one training
    sequence (``(seq_len - 1) * hop + window`` samples); ``seed`` picks the start.
    """
    if prime_path is not None:
        audio = read_audio(prime_path)
        if audio.rate != model.sample_rate:
            raise SpeechgenError(
                f"{prime_path}: sample rate {audio.rate} Hz, but the model works at "
                f"{model.sample_rate} Hz; resample it first"
            )
        source, start, stop = str(prime_path), 0, len(audio)
    else:
        corpus, pieces = _held_out_pieces(model)
        piece = pieces[0] if corpus.layout == "file" else pieces[np.random.default_rng(seed).integers(len(pieces))]
        audio, start, stop = piece.audio, piece.start, piece.stop
        source = f"{corpus.source} (held-out {piece.name})"
    seq_len = (model.train_config or {}).get("seq_len", 1)
    if prime_seconds is None:
        want = sequence_samples(model.window, model.hop, seq_len)
    else:
        want = int(round(prime_seconds * model.sample_rate))
    if want < model.window:
        raise SpeechgenError(
            f"--prime-seconds {want / model.sample_rate:g} is shorter than the model's window "
            f"({model.window / model.sample_rate:g} s)"
        )
    if stop - start < model.window:
        raise SpeechgenError(
            f"{source}: {stop - start} samples, shorter than the model's window of {model.window}"
        )
    want = min(want, stop - start)
    offset = np.random.default_rng(seed).integers(0, stop - start - want + 1)
    normaliser = Normaliser.from_dict(model.normaliser)
    prime = normaliser.apply(audio.read(start + offset, start + offset + want))
    return prime, source


def phone_plan(model, phones_path, prime_path, seed):
    """Priming audio, step phone ids and length for a phone-conditioned model.

    With ``--phones``: the timeline gives the length; the prime is ``window`` samples
    of ``--prime`` (at an offset chosen by ``seed``) or silence. Without: a held-out utterance (chosen by
    ``seed``) gives its first ``window`` samples and its own phone timeline.
    Returns ``(prime, ids, n_samples, source)``; ``n_samples`` counts the prime.
    """
    from .data.timeline import track_from_file, track_of_piece

    normaliser = Normaliser.from_dict(model.normaliser)
    w = model.window
    if phones_path is not None:
        track, length = track_from_file(model, phones_path)
        if prime_path is not None:
            prime, source = choose_prime(model, prime_path, w / model.sample_rate, seed)
        else:
            prime, source = normaliser.apply(np.zeros(w, np.float32)), "silence"
        source = f"phones {phones_path}, prime {source}"
    else:
        _, pieces = _held_out_pieces(model)
        piece = pieces[np.random.default_rng(seed).integers(len(pieces))]
        track, length = track_of_piece(model, piece), len(piece)
        prime = normaliser.apply(piece.read(0, w))
        source = f"phones and first {w} samples of held-out {piece.name}"
    if length <= w:
        raise SpeechgenError(f"{source}: the timeline is {length} samples, not longer than the window ({w})")
    n_steps = (length - w) // model.hop
    ids = track.step_ids(w, n_steps, model.hop, model.phone_context)
    return prime, ids, w + n_steps * model.hop, source


def sample_to_wav(
    model_path, out, seconds, prime_path=None, prime_seconds=None, seed=0, progress=None, phones_path=None,
    temperature=0.0, noise_seed=0,
):
    """Generate audio from the model at ``model_path`` into ``out``.

    Unconditioned models generate ``seconds`` after the prime (the file holds only
    the generated audio). Phone-conditioned models follow a phone timeline and the
    file holds the whole timeline: the ``window`` priming samples, then generated.

    Args:
        progress: called as ``progress(done_steps, total_steps, elapsed_s, real_time_factor)``.
        temperature: noise of ``temperature`` x the validation RMSE added to every
            prediction before it is fed back (0: deterministic).
        noise_seed: seeds that noise.
    Returns:
        dict with rate, seconds, prime_seconds, prime_source, real_time_factor.
    """
    from .measures.drift import noise_scale
    from .model import load_model

    model = load_model(model_path)
    rate = model.sample_rate
    if phones_path is not None and not model.phones:
        raise SpeechgenError(f"{phones_path}: the model is not phone-conditioned; drop --phones")
    generator = Generator(model, noise=noise_scale(model, temperature), seed=noise_seed)

    def report(done, total, elapsed):
        if progress:
            progress(done, total, elapsed, done * model.hop / rate / max(elapsed, 1e-9))

    started = time.perf_counter()
    if model.phones:
        prime, ids, n_samples, source = phone_plan(model, phones_path, prime_path, seed)
        generated = generator.generate(prime, n_samples - len(prime), phones=ids, progress=report)
        audio = np.concatenate([prime, generated])
    else:
        prime, source = choose_prime(model, prime_path, prime_seconds, seed)
        generated = generator.generate(prime, int(round(seconds * rate)), progress=report)
        audio = generated
    elapsed = time.perf_counter() - started
    write_wav(out, rate, Normaliser.from_dict(model.normaliser).invert(audio))
    return {
        "rate": rate,
        "seconds": len(audio) / rate,
        "prime_seconds": len(prime) / rate,
        "prime_source": source,
        "real_time_factor": len(generated) / rate / max(elapsed, 1e-9),
    }

