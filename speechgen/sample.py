"""The ``sample`` verb: load a model, choose priming audio, generate, write a WAV."""

import time

import numpy as np

from .audio import read_audio, write_wav
from .corpus import Normaliser, reopen_corpus
from .errors import SpeechgenError
from .generate import Generator


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
        corpus = reopen_corpus(model.train_config)
        pieces = [p for s in ("test", "valid", "train") for p in corpus.splits[s]]
        if not pieces:
            raise SpeechgenError(f"{corpus.source}: no audio to prime with; give --prime")
        piece = pieces[0]
        audio, start, stop = piece.audio, piece.start, piece.stop
        source = f"{corpus.source} (held-out split)"
    seq_len = (model.train_config or {}).get("seq_len", 1)
    if prime_seconds is None:
        want = (seq_len - 1) * model.hop + model.window
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


def sample_to_wav(model_path, out, seconds, prime_path=None, prime_seconds=None, seed=0, progress=None):
    """Generate ``seconds`` of audio from the model at ``model_path`` into ``out``.

    Args:
        progress: called as ``progress(done_steps, total_steps, elapsed_s, real_time_factor)``.
    Returns:
        dict with rate, seconds, prime_seconds, prime_source, real_time_factor.
    """
    from .model import load_model

    model = load_model(model_path)
    prime, source = choose_prime(model, prime_path, prime_seconds, seed)
    generator = Generator(model)
    n_samples = int(round(seconds * model.sample_rate))
    rate = model.sample_rate

    def report(done, total, elapsed):
        if progress:
            rtf = done * model.hop / rate / max(elapsed, 1e-9)
            progress(done, total, elapsed, rtf)

    started = time.perf_counter()
    generated = generator.generate(prime, n_samples, progress=report)
    elapsed = time.perf_counter() - started
    audio = Normaliser.from_dict(model.normaliser).invert(generated)
    write_wav(out, rate, audio)
    return {
        "rate": rate,
        "seconds": len(generated) / rate,
        "prime_seconds": len(prime) / rate,
        "prime_source": source,
        "real_time_factor": len(generated) / rate / max(elapsed, 1e-9),
    }
