"""Measuring input drift: does free-running audio stay like the training audio?

Per one-second block of audio this module computes two features:

- loudness, the RMS (in the file's units);
- spectral flatness, the geometric over the arithmetic mean of the power spectrum
  (1 for white noise, near 0 for a pure tone; silence is given flatness 1, since a
  spectrum of nothing has no structure).

The training split gives the normal range of each: its 1st to 99th percentile over its
one-second blocks. Generated audio is *stable* until it leaves that range (either
feature below the 1st or above the 99th percentile) for ``run`` seconds in a row: the
usual failures, silence, white noise and an exploding signal, all leave it.
"""

from dataclasses import dataclass

import numpy as np

EPS = 1e-12


def second_features(x, rate, nfft=1024):
    """Per-second RMS and spectral flatness of ``x``.

    Args:
        x: samples ``(n,)`` (any units; flatness does not depend on them).
        rate: Hz; the last partial second is dropped.
        nfft: FFT size for the flatness (Hann-windowed frames, averaged per second).
    Returns:
        ``(rms, flatness)``, each ``(n // rate,)`` float64.
    """
    x = np.asarray(x, np.float64)
    # At least 4 spectra per second, so low sample rates still get a flatness.
    nfft = min(nfft, 2 ** int(np.log2(max(2, rate // 4))))
    seconds = len(x) // rate
    blocks = x[: seconds * rate].reshape(seconds, rate)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    frames_per_second = rate // nfft
    frames = blocks[:, : frames_per_second * nfft].reshape(seconds, frames_per_second, nfft)
    power = np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=-1)) ** 2
    power = power.mean(axis=1)[:, 1:]  # average spectrum of the second, without DC
    flatness = np.exp(np.mean(np.log(power + EPS), axis=1)) / (np.mean(power, axis=1) + EPS)
    silent = np.mean(power, axis=1) < 1e-20
    flatness[silent] = 1.0
    return rms, np.clip(flatness, 0.0, 1.0)


@dataclass
class Ranges:
    """The training audio's normal range: 1st and 99th percentiles of each feature.

    ``seconds`` optionally keeps the training seconds' features (``{"rms": array,
    "flatness": array}``), so generated audio can be placed within them
    (:meth:`percentile`), not only inside or outside.
    """

    rms: tuple
    flatness: tuple
    seconds: dict = None

    def percentile(self, key, value):
        """Percent of training seconds whose ``key`` feature is below ``value``."""
        return float(100.0 * np.mean(self.seconds[key] < value))

    def median(self, key):
        return float(np.median(self.seconds[key]))

    def outside(self, rms, flatness):
        """Bool per second: either feature is out of range."""
        return (
            (rms < self.rms[0]) | (rms > self.rms[1])
            | (flatness < self.flatness[0]) | (flatness > self.flatness[1])
        )

    def to_dict(self):
        return {"rms": list(self.rms), "flatness": list(self.flatness)}


def training_ranges(pieces, rate, low=1.0, high=99.0):
    """:class:`Ranges` from the one-second blocks of the training pieces."""
    rms, flat = [], []
    block = 60 * rate  # whole seconds at a time: memory stays bounded on long files
    for piece in pieces:
        for lo in range(0, len(piece) - rate + 1, block):
            r, f = second_features(piece.read(lo, min(len(piece), lo + block)), rate)
            rms.append(r)
            flat.append(f)
    rms, flat = np.concatenate(rms), np.concatenate(flat)
    if len(rms) < 2:
        from ..errors import SpeechgenError

        raise SpeechgenError("the training split has under 2 s of audio: too little to know its range")
    return Ranges(
        (float(np.percentile(rms, low)), float(np.percentile(rms, high))),
        (float(np.percentile(flat, low)), float(np.percentile(flat, high))),
        {"rms": rms, "flatness": flat},
    )


def _share(outside):
    """Fraction of True in a bool array, None when it is empty."""
    return float(np.mean(outside)) if len(outside) else None


def out_of_range(ranges, signals, rate):
    """Share of the one-second blocks of ``signals`` (real audio, 1-D arrays in file
    units) outside ``ranges``, and how many blocks there were: the calibration for
    generated audio's share (training audio is 2-4 % outside by construction; held-out
    audio shows how far another recording of the same source strays)."""
    outside = [ranges.outside(*second_features(x, rate)) for x in signals]
    outside = np.concatenate(outside) if outside else np.zeros(0, bool)
    return _share(outside), int(len(outside))


def end_to_end(ranges, pieces, rate, seconds, run=3):
    """The training audio read end to end and scored as a generated stream is.

    The stable-seconds target's calibration: real speech, with its pauses and tonal
    vowels, leaves the 1st-99th percentile range too, and sometimes three seconds in
    a row. ``pieces`` (the training split) are joined in order up to ``seconds`` (all
    of them when shorter); its one-second blocks straddle the joins, as a stream's
    blocks straddle its pauses (the ranges come from each piece's own blocks).

    Returns:
        dict: ``stable`` (seconds until ``run`` in a row fall outside), ``seconds``
        (whole seconds read) and ``outside`` (their share outside; None when none).
    """
    want, parts, total = int(round(seconds * rate)), [], 0
    for piece in pieces:
        if total >= want:
            break
        x = piece.read(0, min(len(piece), want - total))
        parts.append(x)
        total += len(x)
    rms, flat = second_features(np.concatenate(parts) if parts else np.zeros(0), rate)
    outside = ranges.outside(rms, flat)
    return {"stable": stable_seconds(outside, run), "seconds": int(len(outside)), "outside": _share(outside)}


def stable_seconds(outside, run=3):
    """Seconds until the first ``run`` consecutive out-of-range seconds (or all)."""
    count = 0
    for i, out in enumerate(outside):
        count = count + 1 if out else 0
        if count == run:
            return i - run + 1
    return len(outside)


def horizons_for(model):
    """Free-running MSE horizons in samples: 1, 10, 100 steps of a frame-level model;
    10 ms, 100 ms and 1 s for a sample-level one (where one step is one sample)."""
    if model.hop > 1:
        return {f"{n} step{'s' if n > 1 else ''}": n * model.hop for n in (1, 10, 100)}
    rate = model.sample_rate
    return {"10 ms": rate // 100, "100 ms": rate // 10, "1 s": rate}


def noise_scale(model, temperature):
    """Normalised noise std for ``temperature``: temperature x the validation RMSE."""
    from ..errors import SpeechgenError

    if not temperature:
        return 0.0
    rmse = model.run_state.get("val_rmse")
    if rmse is None:
        raise SpeechgenError("the model records no validation RMSE (trained by an older speechgen); "
                             "use --noise 0")
    return temperature * rmse


def sampling_label(head_kind, temperature, noise):
    """How the draws were made, in words: a categorical head samples at a softmax
    temperature; an MSE head has no temperature, only its added noise."""
    if head_kind == "categorical":
        return f"temperature {temperature:g}"
    return f"noise {noise:g} x validation RMSE" if noise else "no noise (the MSE head's mean)"


def free_running_report(model, corpus, seconds, primes=4, temperature=1.0, seed=0, run=3, progress=None,
                        noise_seed=0, noise=0.0, quality=True):
    """Generate ``seconds`` free-running from ``primes`` held-out primes and score it.

    Each prime is one training sequence of real audio from the test split (valid if
    test is empty) at a position ``seed`` picks; all primes run as parallel streams.
    ``temperature`` is the softmax temperature of categorical heads; ``noise`` the
    MSE heads' noise (x the validation RMSE); ``noise_seed`` seeds every draw;
    ``progress`` is called as ``progress(done_steps, total_steps, elapsed_s)``.
    With ``quality``, the report also holds ``quality``
    (:func:`speechgen.measures.quality.quality_report` of the generated streams against
    the held-out split, with references from the training split) and ``generated``
    (the streams, normalised, for :func:`speechgen.measures.quality.plot_spectrograms`).

    Returns:
        dict: ``horizons`` {name: MSE against the true continuation, normalised units,
        over the primes that have that much true audio after them}, ``stable_seconds``
        (per prime), ``real_end_to_end`` (the training audio read end to end for as
        long, scored the same way: :func:`end_to_end`), ``out_of_range`` (the share of
        each stream's seconds outside the training range, and of the held-out split's:
        ``streams``, ``held_out``, ``held_out_seconds``), ``ranges`` (training),
        ``features`` (per prime: rms, flatness lists), ``real_features`` (of the
        first prime's true continuation), ``seconds`` (the longest stream),
        ``stream_seconds`` (each stream's: all ``seconds`` unless the model is
        phone-conditioned, when each ends with its utterance), and ``typical``: the
        median per-second RMS and flatness of each stream and of the training audio,
        with the training percentile each stream's median sits at (a stream can be
        inside the range yet sit at its noisy edge).
    """
    from ..data.corpus import Normaliser
    from ..data.framing import Framing
    from ..generate import Generator

    framing = Framing.of(model)
    rate, h = model.sample_rate, framing.hop
    normaliser = Normaliser.from_dict(model.normaliser)
    ranges = training_ranges(corpus.splits["train"], rate)
    held = held_out_primes(model, corpus.splits["test"] or corpus.splits["valid"], seconds, primes, seed,
                           corpus.source)
    chosen, prime, lengths, n_samples = held.chosen, held.audio, held.lengths, held.n_samples
    prime_len = prime.shape[1]
    gen = Generator(model, streams=primes, noise=noise_scale(model, noise), seed=noise_seed, temperature=temperature)
    out = np.atleast_2d(gen.generate(prime, n_samples, phones=held.ids, progress=progress))
    out = [y[:length] for y, length in zip(out, lengths)]
    horizons = {}
    for name, length in horizons_for(model).items():
        errors = []
        for (piece, offset), y in zip(chosen, out):
            start = offset + prime_len
            if length <= min(len(y), len(piece) - start):
                truth = normaliser.read(piece, start, start + length)
                errors.append(np.mean((y[:length] - truth) ** 2))
        horizons[name] = float(np.mean(errors)) if errors else None
    features, stable, shares = [], [], []
    for y, before in zip(out, prime):
        # De-emphasised on from the prime (not from silence): the audio as it continues.
        rms, flat = second_features(normaliser.invert(y, before), rate)
        features.append({"rms": rms.tolist(), "flatness": flat.tolist()})
        outside = ranges.outside(rms, flat)
        stable.append(stable_seconds(outside, run))
        shares.append(_share(outside))
    # The held-out split, read once: the yardstick here and the quality reference below.
    held_audio = [p.read(0, len(p)) for p in capped_pieces(corpus.splits["test"] or corpus.splits["valid"])]
    held_share, held_seconds = out_of_range(ranges, held_audio, rate)
    outside_shares = {"streams": shares, "held_out": held_share, "held_out_seconds": held_seconds}
    real_stream = end_to_end(ranges, corpus.splits["train"], rate, n_samples / rate, run)
    typical = {"training": {k: ranges.median(k) for k in ("rms", "flatness")}, "streams": []}
    for f in features:
        medians = {k: float(np.median(f[k])) if f[k] else None for k in ("rms", "flatness")}
        typical["streams"].append({
            **medians,
            **{f"{k}_percentile": None if v is None else ranges.percentile(k, v) for k, v in medians.items()},
        })
    piece, offset = chosen[0]
    real = piece.read(offset + prime_len, min(len(piece), offset + prime_len + n_samples))
    real_rms, real_flat = second_features(real, rate)
    quality_part = {}
    if quality:
        from .quality import quality_report

        # Judged as audio: a pre-emphasised model's streams and references de-emphasised.
        held = [normaliser.plain(normaliser.apply(x)) for x in held_audio]
        train = judged_audio(corpus.splits["train"], normaliser)
        plain = [normaliser.plain(y, before) for y, before in zip(out, prime)]
        quality_part = {"quality": quality_report(plain, held, train, rate, seed=noise_seed), "generated": plain,
                        "held_out": held}
    return {
        **quality_part,
        "seconds": n_samples / rate,
        "stream_seconds": [length / rate for length in lengths],
        "primes": [f"{p.name}@{o}" for p, o in chosen],
        "temperature": temperature,
        "noise": noise,
        "sampling": sampling_label(model.head.kind, temperature, noise),
        "horizons": horizons,
        "stable_seconds": stable,
        "real_end_to_end": real_stream,
        "out_of_range": outside_shares,
        "ranges": ranges.to_dict(),
        "features": features,
        "real_features": {"rms": real_rms.tolist(), "flatness": real_flat.tolist()},
        "typical": typical,
    }


@dataclass
class HeldOutPrimes:
    """Primes for free-running generation and how long each stream runs.

    Attributes:
        chosen: ``(piece, offset)`` per prime: the prime is ``piece``'s samples
            ``offset .. offset + prime length``.
        audio: ``(P, prime length)`` float32, normalised (one training sequence each).
        ids: phone-conditioned models: ``(P, steps, C)`` phone ids of the priming and
            generated steps (each stream follows its own utterance); else None.
        lengths: samples each stream is kept for (all ``n_samples`` unless
            phone-conditioned, when each ends with its utterance).
        n_samples: samples to generate (the longest stream).
    """

    chosen: list
    audio: np.ndarray
    ids: object
    lengths: list
    n_samples: int


def held_out_primes(model, pieces, seconds, primes, seed, source="corpus"):
    """Choose ``primes`` primes from ``pieces`` (held-out audio): each one training
    sequence of real audio in a piece ``seed`` picks, at a position it picks, and
    ``seconds`` of generation after each.

    Raises:
        SpeechgenError: no piece longer than one training sequence (named by ``source``).
    """
    from ..data.corpus import Normaliser
    from ..data.framing import Framing

    framing = Framing.of(model)
    w, h = framing.window, framing.hop
    normaliser = Normaliser.from_dict(model.normaliser)
    prime_len = framing.prime_samples()
    pieces = primeable(pieces, framing, source)
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(primes):
        piece = pieces[rng.integers(len(pieces))]
        chosen.append((piece, int(rng.integers(0, len(piece) - prime_len - h + 1))))
    n_samples = int(round(seconds * model.sample_rate))
    lengths = [n_samples] * primes
    ids = None
    if model.phones:
        # Each stream follows its own utterance's phones to that utterance's end: all
        # run as long as the longest (past its end a track repeats its last phone) and
        # each is cut at its own end, so one short utterance no longer caps them all.
        from ..data.phones import track_of_piece

        lengths = [min(n_samples, len(p) - o - prime_len) for p, o in chosen]
        n_samples = max(lengths)
        # The prime's teacher-forced steps, then one per generated frame.
        steps = framing.steps(prime_len) + max(1, -(-n_samples // h))
        ids = np.stack([track_of_piece(model, p).step_ids(o + w, steps, h, model.phone_context) for p, o in chosen])
    audio = np.stack([normaliser.read(p, o, o + prime_len) for p, o in chosen])
    return HeldOutPrimes(chosen, audio, ids, lengths, n_samples)


def primeable(pieces, framing, source="corpus"):
    """The pieces long enough to prime a model of ``framing``
    (:class:`speechgen.data.framing.Framing`) and generate one step after.

    Raises:
        SpeechgenError: none is (named by ``source``).
    """
    from ..errors import SpeechgenError

    pieces = [p for p in pieces if len(p) > framing.prime_samples() + framing.hop]
    if not pieces:
        raise SpeechgenError(f"{source}: no held-out audio longer than one training sequence to prime with")
    return pieces


def judged_audio(pieces, normaliser):
    """The audio of ``pieces`` (capped: :func:`capped_pieces`) as the quality report
    judges it: through the model's normaliser and back (``plain(apply(x))``), so a
    pre-emphasised model's references are in its streams' units, de-emphasised."""
    return [normaliser.plain(normaliser.apply(p.read(0, len(p)))) for p in capped_pieces(pieces)]


def capped_pieces(pieces, max_samples=8_000_000):
    """The first pieces of a split up to about ``max_samples`` samples (a long
    recording is cut: a shorter :class:`speechgen.data.corpus.Piece` of it), so the
    quality references stay bounded in memory."""
    import dataclasses

    kept, total = [], 0
    for p in pieces:
        if total >= max_samples:
            break
        if len(p) > max_samples - total:
            p = dataclasses.replace(p, stop=p.start + max_samples - total)
        kept.append(p)
        total += len(p)
    return kept


def plot_drift(report, path, title=None):
    """RMS and flatness per second of each generated stream vs real audio and the
    training range (shaded)."""
    from ..plots import _pyplot
    from ..files import atomic_path

    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for ax, key, label in zip(axes, ("rms", "flatness"), ("RMS per second", "spectral flatness")):
        lo, hi = report["ranges"][key]
        ax.axhspan(lo, hi, color="green", alpha=0.12, label="training 1st-99th percentile")
        for i, f in enumerate(report["features"]):
            ax.plot(np.arange(len(f[key])) + 0.5, f[key], lw=1, label=f"generated {i}" if i < 4 else None)
        real = report["real_features"][key]
        ax.plot(np.arange(len(real)) + 0.5, real, "k--", lw=1, label="real continuation (prime 0)")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("seconds of free-running generation")
    axes[0].set_title(title or f"free-running drift, {report['sampling']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def format_report(report):
    lengths = report.get("stream_seconds") or [report["seconds"]]
    each = (f"{report['seconds']:.0f} s each" if min(lengths) == max(lengths) else
            "each to its utterance's end: " + ", ".join(f"{v:.2f}" for v in lengths) + " s")
    lines = [f"free-running from {len(report['stable_seconds'])} held-out primes, {each}, {report['sampling']}"]
    lines.append("| horizon | free-running MSE (normalised) |")
    lines.append("| --- | --- |")
    for name, mse in report["horizons"].items():
        lines.append(f"| {name} | {'-' if mse is None else f'{mse:.6f}'} |")
    s = report["stable_seconds"]
    lines.append(f"stable seconds per prime: {', '.join(str(v) for v in s)} (min {min(s)}, mean {np.mean(s):.1f}, "
                 f"of {report['seconds']:.0f})")
    real = report.get("real_end_to_end")
    if real and real["seconds"]:
        lines.append(f"the training audio read end to end, scored the same way: stable {real['stable']} of "
                     f"{real['seconds']} s ({100 * real['outside']:.0f} % of its seconds outside the range)")
    shares = report.get("out_of_range")
    if shares and shares["streams"] and None not in shares["streams"]:
        held = "-" if shares["held_out"] is None else f"{100 * shares['held_out']:.0f} %"
        lines.append("seconds outside the training range: generated "
                     + ", ".join(f"{100 * v:.0f} %" for v in shares["streams"])
                     + f"; held-out audio {held} (of {shares['held_out_seconds']} s); training 2-4 % by construction")
    typical = report.get("typical")
    if typical and typical["streams"] and typical["streams"][0]["rms"] is not None:
        for key, unit in (("rms", "RMS"), ("flatness", "flatness")):
            streams = typical["streams"]
            lines.append(
                f"median per-second {unit}: training {typical['training'][key]:.4g}; generated "
                + ", ".join("-" if s[key] is None else f"{s[key]:.4g} (p{s[key + '_percentile']:.0f})"
                            for s in streams)
                + " (pN: the training percentile it sits at)"
            )
    return "\n".join(lines)
