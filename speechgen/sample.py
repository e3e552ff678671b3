"""The ``sample`` verb: load a model, choose priming audio (and phones), generate, write."""

import time

import numpy as np

from .data.audio import read_audio, write_wav
from .data.corpus import Normaliser, reopen_corpus
from .errors import SpeechgenError, UsageError
from .data.framing import Framing
from .generate import Generator

DEFAULT_SECONDS = 10.0  # what an unconditioned model generates when --seconds is not given


def _held_out_pieces(model):
    """The test split's pieces (valid's if test is empty, train's if both are)."""
    hint = "move it back, or sample without it: " + (
        "give --phones PHN (and --prime WAV)" if model.phones else "give --prime WAV"
    )
    corpus = reopen_corpus(model.train_config, hint=hint)
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
    if prime_seconds is None:
        want = Framing.of(model).prime_samples()
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
    prime = normaliser.read(audio, start + offset, start + offset + want)
    return prime, source


def phone_plan(model, phones_path, prime_path, seed):
    """Priming audio, step phone ids and length for a phone-conditioned model.

    With ``--phones``: the timeline gives the length; the prime is ``window`` samples
    of ``--prime`` (at an offset chosen by ``seed``) or silence. Without: a held-out utterance (chosen by
    ``seed``) gives its first ``window`` samples and its own phone timeline.
    Returns ``(prime, ids, n_samples, source)``; ``n_samples`` counts the prime.
    """
    from .data.phones import track_from_file, track_of_piece

    normaliser = Normaliser.from_dict(model.normaliser)
    w = model.window
    if phones_path is not None:
        track, length = track_from_file(model, phones_path)
        if prime_path is not None:
            prime, source = choose_prime(model, prime_path, w / model.sample_rate, seed)
        else:
            prime, source = silence_prime(model), "silence"
        source = f"phones {phones_path}, prime {source}"
    else:
        _, pieces = _held_out_pieces(model)
        piece = pieces[np.random.default_rng(seed).integers(len(pieces))]
        track, length = track_of_piece(model, piece), len(piece)
        prime = normaliser.apply(piece.read(0, w))
        source = f"phones and first {w} samples of held-out {piece.name}"
    return timeline_steps(model, track, length, prime, source)


def silence_prime(model):
    """One ``window`` of silence (normalised): the prime of a timeline given on its own."""
    return Normaliser.from_dict(model.normaliser).apply(np.zeros(model.window, np.float32))


def timeline_steps(model, track, length, prime, source):
    """The step phone ids of a ``length``-sample :class:`PhoneTrack` whose first
    ``window`` samples are ``prime``: ``(prime, ids, n_samples, source)`` as
    :func:`phone_plan` returns them (``sample --phones``, ``say`` and the
    intelligibility report all generate from these)."""
    w = model.window
    if length <= w:
        raise SpeechgenError(f"{source}: the timeline is {length} samples, not longer than the window ({w})")
    n_steps = (length - w) // model.hop
    ids = track.step_ids(w, n_steps, model.hop, model.phone_context)
    return prime, ids, w + n_steps * model.hop, source


def check_options(model, seconds, prime_path, prime_seconds, phones_path):
    """Refuse options that would not apply to this kind of model (exit status 2).

    A phone-conditioned model's length comes from its timeline and its prime is one
    window, so ``--seconds`` and ``--prime-seconds`` never apply to it, and without
    ``--phones`` the held-out utterance gives the prime too, so ``--prime`` needs
    ``--phones``. (``--phones`` for an unconditioned model is a plain error.)
    """
    if phones_path is not None and not model.phones:
        raise SpeechgenError(f"{phones_path}: the model is not phone-conditioned; drop --phones")
    if not model.phones:
        return
    if seconds is not None:
        raise UsageError(
            "--seconds does not apply to a phone-conditioned model: its phone timeline (--phones, or a "
            "held-out utterance's labels) sets the length"
        )
    if prime_seconds is not None:
        raise UsageError(
            f"--prime-seconds does not apply to a phone-conditioned model: its prime is one window "
            f"({model.window} samples)"
        )
    if prime_path is not None and phones_path is None:
        raise UsageError(
            "--prime needs --phones with a phone-conditioned model (without --phones, a held-out "
            "utterance gives both the phones and the prime)"
        )


def generation_settings(model, temperature=None, noise=None, noise_seed_given=False):
    """``(temperature, noise_sigma)`` for the model's head from the command line's
    ``--temperature`` and ``--noise`` (None: not given).

    Categorical heads draw at a softmax ``temperature`` (default 1); MSE heads have no
    temperature, only ``noise``: Gaussian noise of ``noise`` x the validation RMSE on
    each prediction (default 0, deterministic).

    Raises:
        UsageError: a flag that does not apply to the model's head, or a noise seed
        for draws that are not random.
    """
    from .errors import UsageError
    from .measures.drift import noise_scale

    if model.head.kind == "categorical":
        if noise is not None:
            raise UsageError("--noise is for MSE models; a categorical model samples at --temperature T")
        temperature = 1.0 if temperature is None else temperature
        random = temperature > 0
    else:
        if temperature is not None:
            raise UsageError(
                "--temperature is a softmax temperature of categorical models; an MSE model adds noise with "
                "--noise N (N x its validation RMSE)"
            )
        random = bool(noise)
    if noise_seed_given and not random:
        raise UsageError("--noise-seed only applies to random draws (--temperature or --noise above 0)")
    return temperature if temperature is not None else 0.0, noise_scale(model, noise or 0.0)


def sample_to_wav(
    model_path, out, seconds=None, prime_path=None, prime_seconds=None, seed=0, progress=None, phones_path=None,
    temperature=None, noise_seed=0, include_prime=False, noise=None, noise_seed_given=False,
):
    """Generate audio from the model at ``model_path`` into ``out``.

    The file holds only the generated audio, for both kinds of model, unless
    ``include_prime``: then the priming audio comes first. Unconditioned models
    generate ``seconds`` (default 10) after the prime. Phone-conditioned models follow
    a phone timeline whose first ``window`` samples are the prime, so they generate
    from timeline sample ``window`` on (with ``include_prime``, file sample ``t`` is
    timeline sample ``t``).

    Args:
        seconds, prime_seconds: None when not given; refused for phone-conditioned
            models (:func:`check_options`), as ``prime_path`` without ``phones_path`` is.
        seed: picks the held-out stretch or utterance (and where in ``prime_path`` to start).
        progress: called as ``progress(done_steps, total_steps, elapsed_s, real_time_factor)``.
        temperature: categorical heads: the softmax temperature (None: 1).
        noise: MSE heads: noise of ``noise`` x the validation RMSE added to every
            prediction before it is fed back (None: 0, deterministic).
        noise_seed: seeds every draw.
        include_prime: write the prime before the generated audio.
    Returns:
        dict with rate, seconds (in the file), generated_seconds, prime_seconds,
        prime_source, include_prime, real_time_factor.
    Raises:
        UsageError: an option that does not apply to the model.
        SpeechgenError: bad prime or phones, training data gone.
    """
    from .model import load_model

    model = load_model(model_path)
    rate = model.sample_rate
    check_options(model, seconds, prime_path, prime_seconds, phones_path)
    temperature, sigma = generation_settings(model, temperature, noise, noise_seed_given)
    generator = Generator(model, noise=sigma, seed=noise_seed, temperature=temperature)

    def report(done, total, elapsed):
        if progress:
            progress(done, total, elapsed, done * model.hop / rate / max(elapsed, 1e-9))

    started = time.perf_counter()
    if model.phones:
        prime, ids, n_samples, source = phone_plan(model, phones_path, prime_path, seed)
        generated = generator.generate(prime, n_samples - len(prime), phones=ids, progress=report)
    else:
        prime, source = choose_prime(model, prime_path, prime_seconds, seed)
        n_samples = int(round((DEFAULT_SECONDS if seconds is None else seconds) * rate))
        generated = generator.generate(prime, n_samples, progress=report)
    elapsed = time.perf_counter() - started
    audio = np.concatenate([prime, generated]) if include_prime else generated
    write_wav(out, rate, Normaliser.from_dict(model.normaliser).invert(audio))
    return {
        "rate": rate,
        "seconds": len(audio) / rate,
        "generated_seconds": len(generated) / rate,
        "prime_seconds": len(prime) / rate,
        "prime_source": source,
        "include_prime": include_prime,
        "real_time_factor": len(generated) / rate / max(elapsed, 1e-9),
    }

