"""The ``reconstruct`` verb: write-up 2's two reconstructions of one utterance.

- teacher-forced: every step reads the true previous ``window`` samples;
- free-running: only the first ``window`` samples (and the phones) are given, every
  later step reads the model's own output.

Both are compared with the original over the samples after the first window, in
normalised units, so the numbers match ``evaluate``'s.
"""

from pathlib import Path

import numpy as np

from .data.audio import read_audio, write_wav
from .data.corpus import Normaliser, labels_beside
from .errors import SpeechgenError
from .data.framing import Framing
from .generate import Generator

OUTPUTS = ("original.wav", "teacher_forced.wav", "free_running.wav", "reconstruction.png")


def reconstruct(model_path, wav_path, out_dir, phones_path=None, force=False, temperature=1.0, seed=0):
    """Reconstruct ``wav_path`` both ways; write WAVs and a 3-panel PNG to ``out_dir``.

    Free-running, a categorical head draws at ``temperature`` (seeded by ``seed``); the
    teacher-forced reconstruction is each step's point prediction.

    Returns:
        dict: ``teacher_forced_mse``, ``free_running_mse`` (normalised units),
        ``seconds``, ``phones`` (the label file used or None).
    """
    import tensorflow as tf

    from .model import load_model
    from .plots import plot_waveforms
    from .data.phones import track_from_file

    model = load_model(model_path)
    wav_path, out_dir = Path(wav_path), Path(out_dir)
    audio = read_audio(wav_path)
    if audio.rate != model.sample_rate:
        raise SpeechgenError(
            f"{wav_path}: sample rate {audio.rate} Hz, but the model works at {model.sample_rate} Hz"
        )
    framing = Framing.of(model)
    w, h = framing.window, framing.hop
    n_steps = framing.steps(len(audio))
    if n_steps < 1:
        raise SpeechgenError(f"{wav_path}: {len(audio)} samples, too short for the model's window of {w}")
    ids = None
    if model.phones:
        phones_path = Path(phones_path) if phones_path else labels_beside(wav_path)
        if phones_path is None:
            raise SpeechgenError(
                f"{wav_path}: the model is phone-conditioned; give --phones (no .PHN beside the audio)"
            )
        track, _ = track_from_file(model, phones_path, len(audio))
        ids = track.step_ids(w, n_steps, h, model.phone_context)
    elif phones_path:
        raise SpeechgenError(f"{phones_path}: the model is not phone-conditioned; drop --phones")
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not force:
        raise SpeechgenError(f"{out_dir / existing[0]}: already exists; choose another --out-dir or pass --force")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpeechgenError(f"{out_dir}: cannot create the folder ({err.strerror})") from None

    normaliser = Normaliser.from_dict(model.normaliser)
    x = normaliser.apply(audio.read())
    end = w + n_steps * h
    truth = x[w:end]

    net = model.with_batch_size(1)
    net.reset_rnn_states()
    frames, _ = framing.frame(tf.constant(x[None, :end]))
    inputs = [frames, tf.constant(ids[None])] if ids is not None else frames
    # One compiled call over the whole utterance (eager Keras is ~25x slower here); the
    # head's point prediction (a categorical head's decoded expectation).
    teacher = tf.function(lambda v: net.head.point(net(v, training=False)))(inputs).numpy().reshape(-1)

    free = Generator(model, temperature=temperature, seed=seed).generate(x[:w], n_steps * h, phones=ids)

    result = {
        "teacher_forced_mse": float(np.mean((teacher - truth) ** 2)),
        "free_running_mse": float(np.mean((free - truth) ** 2)),
        "zero_mse": float(np.mean(truth**2)),
        "seconds": len(audio) / audio.rate,
        "phones": str(phones_path) if ids is not None else None,
    }
    rate = audio.rate
    head = x[:w]
    signals = {
        "original": x[:end],
        "teacher_forced": np.concatenate([head, teacher]),
        "free_running": np.concatenate([head, free]),
    }
    written = []
    try:
        for name, y in signals.items():
            write_wav(out_dir / f"{name}.wav", rate, normaliser.invert(y))
            written.append(out_dir / f"{name}.wav")
        _plot(plot_waveforms, signals, normaliser, result, rate, out_dir, wav_path, model_path)
    except BaseException:
        # No partial set of outputs: remove what this call wrote (earlier files of
        # the same names were already replaced only with --force).
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return result


def _plot(plot_waveforms, signals, normaliser, result, rate, out_dir, wav_path, model_path):
    plot_waveforms(
        [
            ("original", normaliser.invert(signals["original"])),
            (f"teacher-forced\nMSE {result['teacher_forced_mse']:.2e}", normaliser.invert(signals["teacher_forced"])),
            (f"free-running\nMSE {result['free_running_mse']:.2e}", normaliser.invert(signals["free_running"])),
        ],
        rate,
        out_dir / "reconstruction.png",
        title=f"{wav_path.name}: reconstructions by {Path(model_path).name}",
    )
