"""Does it generate, or is it noise? A generation-quality report.

Generated audio is compared with real held-out audio frame by frame, in the
features speech recognisers use, and placed on a scale set by references made from
the training audio:

- **features**: per 25 ms frame (10 ms hop, Hann window) the log power in 40 mel
  bands and their deltas, ``(frames, 80)`` (:func:`log_mel_frames`);
- **Frechet distance** (FD) between Gaussian fits of two sets of frames, as in FID
  (:func:`frechet_distance`): it grows with any difference in mean spectrum,
  loudness, spectral variety or dynamics;
- **references**, each as many streams of the same lengths as the generated audio,
  so every FD has the same sample-size bias: white noise at the training RMS; *LPC
  noise*, Gaussian noise through the order-32 all-pole filter of the training audio
  (the right long-term spectrum and loudness, but no pitch, no phones, no pauses);
  and real training audio (stretches spread evenly over the training split);
- **quality** ``q = (FD_lpc - FD_model) / (FD_lpc - FD_real)``: 1 is as close to the
  held-out audio as other real audio is, 0 no closer than LPC noise, below 0 worse
  than noise with the right spectrum (white noise, silence, a tone, an explosion);
- **voicing**: the share of frames with a normalised autocorrelation peak above 0.6
  at a lag of a 60-400 Hz pitch (:func:`voiced_share`), and the share of silent
  frames (:func:`silent_share`). Speech has both; noise has neither.

Units: any consistent float units (normalised, or [-1, 1]). No signal is normalised
on its own, so a gain mismatch counts: noise at the wrong loudness scores badly.
The two level-dependent constants, the log floor and the silence threshold, are set
relative to the held-out audio in :func:`quality_report`, so a common gain applied to
all inputs leaves the report unchanged.
"""

import warnings

import numpy as np

FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
BANDS = 40
AR_ORDER = 32
VOICED_THRESHOLD = 0.6
PITCH_RANGE = (60.0, 400.0)  # Hz
# Relative levels used by quality_report (dB re the held-out audio, see there).
FLOOR_DB = -80.0
SILENCE_DB = -50.0
REFERENCES = ("real", "lpc_noise", "white_noise")


def frame_sizes(rate):
    """``(frame, hop, nfft)`` in samples for 25 ms frames with a 10 ms hop at ``rate`` Hz."""
    frame = int(round(FRAME_SECONDS * rate))
    hop = int(round(HOP_SECONDS * rate))
    nfft = 1 << int(np.ceil(np.log2(frame)))
    return frame, hop, nfft


def frames_of(x, frame, hop):
    """Frames ``(count, frame)`` of ``x`` starting every ``hop`` samples; only whole
    frames, so ``count = 1 + (len(x) - frame) // hop`` (0 when ``x`` is shorter)."""
    x = np.asarray(x, np.float64)
    if len(x) < frame:
        return np.zeros((0, frame))
    return np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]


def hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(rate, nfft, bands=BANDS, fmin=0.0, fmax=None):
    """Triangular mel filters on the ``nfft // 2 + 1`` bins of a real FFT.

    The ``bands + 2`` corner frequencies are equally spaced in mel from ``fmin`` to
    ``fmax`` (default ``rate / 2``); filter ``b`` rises linearly (in Hz) from corner
    ``b`` to 1 at corner ``b + 1`` and falls to 0 at corner ``b + 2``. Peaks are 1 (not
    area-normalised), so neighbouring filters sum to exactly 1 between the first and
    the last centre: a flat spectrum gives equal band powers up to the bin count.

    Returns:
        float64 ``(bands, nfft // 2 + 1)``.
    """
    fmax = rate / 2.0 if fmax is None else fmax
    corners = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2))
    freqs = np.arange(nfft // 2 + 1) * rate / nfft
    lo, mid, hi = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (freqs - lo) / (mid - lo)
    falling = (hi - freqs) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


def deltas(c, width=2):
    """Regression deltas over ``+-width`` frames (HTK): ``sum_n n (c[t+n] - c[t-n]) /
    (2 sum_n n^2)``, with the edge frames repeated. ``c`` is ``(frames, dims)``."""
    if len(c) == 0:
        return np.zeros_like(c)
    padded = np.pad(c, ((width, width), (0, 0)), mode="edge")
    t = len(c)
    num = sum(
        n * (padded[width + n : width + n + t] - padded[width - n : width - n + t]) for n in range(1, width + 1)
    )
    return num / (2.0 * sum(n * n for n in range(1, width + 1)))


def mel_power(x, rate, bands=BANDS):
    """Mel-band power per frame, ``(frames, bands)`` float64, in ``x``'s units squared
    (the Hann-windowed power spectrum summed through :func:`mel_filterbank`)."""
    frame, hop, nfft = frame_sizes(rate)
    f = frames_of(x, frame, hop)
    if len(f) == 0:
        return np.zeros((0, bands))
    power = np.abs(np.fft.rfft(f * np.hanning(frame), nfft, axis=-1)) ** 2
    return power @ mel_filterbank(rate, nfft, bands).T


def log_mel_frames(x, rate, floor=1e-10, bands=BANDS):
    """Log-mel features and their deltas per 25 ms frame (10 ms hop).

    Args:
        x: samples ``(n,)``, any units.
        rate: Hz.
        floor: added to the band powers before the natural log, in ``x``'s units
            squared; it stops silence from going to minus infinity and sets how far
            below speech silence sits. :func:`quality_report` sets it relative to the
            held-out audio.
    Returns:
        float64 ``(frames, 2 * bands)``: log powers, then deltas (over +-2 frames);
        ``frames = 1 + (n - frame) // hop`` (400 and 160 samples at 16 kHz), 0 for a
        signal shorter than one frame.
    """
    logs = np.log(mel_power(x, rate, bands) + floor)
    return np.concatenate([logs, deltas(logs)], axis=1)


def frechet_distance(a, b, eps=1e-6):
    """Frechet distance between Gaussian fits of frame sets ``a`` and ``b``.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, the FID formula.

    Args:
        a, b: ``(frames, dims)`` arrays (at least 2 frames each); 1-D arrays are
            samples of one dimension.
        eps: when the product of covariances is too near singular for a finite
            square root, ``eps * I`` is added to both (as the FID reference does).
    Returns:
        float, >= 0 up to rounding (in the features' units squared).
    """
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = (a[:, None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_a @ s_b)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.all(np.isfinite(covmean)):
        # Singular (silence: all frames equal) or nearly so: regularise, as FID does.
        offset = eps * np.eye(len(s_a))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    # S_a S_b has real non-negative eigenvalues; an imaginary part is rounding error.
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(max(0.0, diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean)))


def frame_count(n, rate):
    """How many whole 25 ms frames (10 ms hop) ``n`` samples give (:func:`frames_of`)."""
    frame, hop, _ = frame_sizes(rate)
    return 1 + (n - frame) // hop if n >= frame else 0


def frame_rms(x, rate):
    """Per 25 ms frame (10 ms hop) RMS about the frame's mean, ``(frames,)``: a stuck
    constant output is silence, whatever its offset."""
    frame, hop, _ = frame_sizes(rate)
    f = frames_of(x, frame, hop)
    return f.std(axis=1) if len(f) else np.zeros(0)


def silent_share(x, rate, threshold=1e-3):
    """Share of 25 ms frames (10 ms hop) whose RMS (about the frame mean) is below
    ``threshold``, in ``x``'s units.

    The default, 1e-3, is -60 dB re full scale for audio in [-1, 1]. In
    :func:`quality_report` the threshold is instead -50 dB re the held-out audio's
    RMS (``SILENCE_DB``), so it follows whatever units the caller uses: real speech
    pauses (room noise) fall below it; quiet consonants do not.

    Returns:
        float in [0, 1] (0 for audio shorter than a frame).
    """
    rms = frame_rms(x, rate)
    return float(np.mean(rms < threshold)) if len(rms) else 0.0


def voicing_strength(x, rate, pitch_range=PITCH_RANGE, chunk=2048):
    """Per frame, the highest local peak of the normalised autocorrelation over the
    lags of a ``pitch_range`` (Hz) pitch, ``(frames,)`` in [-1, 1] (0 for a frame
    with no peak there, or no energy).

    ``r(L) = sum x[t] x[t+L] / sqrt(sum x[t]^2 sum x[t+L]^2)``, the sums over the
    ``frame - L`` overlapping samples of the mean-removed frame, so a long lag is not
    penalised for its shorter overlap. Only local peaks count: low-pass noise has a
    high ``r`` at the shortest lag only because ``r`` falls from lag 0, not because it
    repeats.
    """
    frame, hop, _ = frame_sizes(rate)
    f = frames_of(x, frame, hop)
    lag_lo = max(2, int(np.floor(rate / pitch_range[1])))
    lag_hi = min(frame - 2, int(np.ceil(rate / pitch_range[0])))
    lags = np.arange(lag_lo - 1, lag_hi + 2)
    nfft = 1 << int(np.ceil(np.log2(2 * frame)))
    out = np.zeros(len(f))
    for start in range(0, len(f), chunk):
        block = f[start : start + chunk]
        block = block - block.mean(axis=1, keepdims=True)
        spectrum = np.fft.rfft(block, nfft, axis=1)
        acf = np.fft.irfft(np.abs(spectrum) ** 2, nfft, axis=1)[:, lags]
        cs = np.concatenate([np.zeros((len(block), 1)), np.cumsum(block**2, axis=1)], axis=1)
        head = cs[:, frame - lags]  # energy of x[0 : frame - L]
        tail = cs[:, [frame]] - cs[:, lags]  # energy of x[L : frame]
        denom = np.sqrt(head * tail)
        r = np.where(denom > 0, acf / np.where(denom > 0, denom, 1.0), 0.0)
        inner = r[:, 1:-1]
        peak = (inner >= r[:, :-2]) & (inner >= r[:, 2:])
        out[start : start + len(block)] = np.max(np.where(peak, inner, 0.0), axis=1)
    return out


def voiced_share(x, rate, threshold=VOICED_THRESHOLD, silence=1e-3, pitch_range=PITCH_RANGE):
    """Share of 25 ms frames (10 ms hop) that are voiced: a normalised
    autocorrelation peak above ``threshold`` at a lag of a ``pitch_range`` pitch
    (:func:`voicing_strength`), and not silent (RMS at or above ``silence``, in
    ``x``'s units; see :func:`silent_share`).

    Returns:
        float in [0, 1] (0 for audio shorter than a frame).
    """
    strength = voicing_strength(x, rate, pitch_range)
    if not len(strength):
        return 0.0
    return float(np.mean((strength > threshold) & (frame_rms(x, rate) >= silence)))


def as_signals(audio):
    """A list of float64 1-D signals from an array ``(n,)``, an array ``(P, n)`` (one
    signal per row) or a list of arrays."""
    if isinstance(audio, np.ndarray) and audio.ndim == 2:
        return [np.asarray(row, np.float64) for row in audio]
    if isinstance(audio, np.ndarray) or np.isscalar(audio):
        return [np.asarray(audio, np.float64).reshape(-1)]
    return [np.asarray(a, np.float64).reshape(-1) for a in audio]


def fit_ar(train, order=AR_ORDER):
    """All-pole (LPC) model of the training audio by the autocorrelation method.

    The biased autocorrelation, pooled over the signals about their pooled mean,
    is solved by Levinson recursion (``scipy.linalg.solve_toeplitz``). Unlike least
    squares, this method always gives a stable filter, which matters when it is run
    freely for minutes.

    Returns:
        ``(a, variance, mean)``: ``a`` float64 ``(order,)`` with ``x[t] - mean ~
        sum_k a[k] (x[t-1-k] - mean)``; ``variance`` of the prediction residual; the
        pooled mean (all in ``train``'s units).
    """
    from scipy.linalg import solve_toeplitz

    signals = as_signals(train)
    count = sum(len(s) for s in signals)
    mean = sum(float(s.sum()) for s in signals) / count
    r = np.zeros(order + 1)
    for s in signals:
        s = s - mean
        nfft = 1 << int(np.ceil(np.log2(2 * len(s) + 1)))
        acf = np.fft.irfft(np.abs(np.fft.rfft(s, nfft)) ** 2, nfft)[: order + 1]
        r[: len(acf)] += acf
    r /= count
    if r[0] <= 0:  # constant training audio: no spectrum to copy
        return np.zeros(order), 0.0, mean
    # A tiny white-noise floor keeps the Toeplitz solve stable on (near-)periodic audio.
    r[0] *= 1.0 + 1e-9
    a = solve_toeplitz(r[:order], r[1:])
    variance = float(max(0.0, r[0] - a @ r[1:]))
    return a, variance, mean


def white_noise_like(lengths, train, seed=0):
    """Gaussian white noise with the training audio's mean and RMS about it, one
    signal per entry of ``lengths`` (samples)."""
    signals = as_signals(train)
    pooled = np.concatenate(signals)
    rng = np.random.default_rng(seed)
    return [pooled.mean() + pooled.std() * rng.standard_normal(n) for n in lengths]


def lpc_noise_like(lengths, train, order=AR_ORDER, seed=0, burn_in=8192):
    """Gaussian noise of the residual variance through the training audio's
    all-pole filter (:func:`fit_ar`): the training audio's long-term spectrum and
    RMS, without pitch, phones or pauses. The first ``burn_in`` samples of each
    signal are dropped so the filter starts in its stationary state."""
    from scipy.signal import lfilter

    a, variance, mean = fit_ar(train, order)
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        drive = rng.standard_normal(n + burn_in) * np.sqrt(variance)
        out.append(mean + lfilter([1.0], np.r_[1.0, -a], drive)[burn_in:])
    return out


def real_like(lengths, train):
    """Stretches of the (concatenated) training audio, one per entry of ``lengths``,
    with starts spread evenly over it: stretch ``i`` of ``P`` starts at
    ``(L - n_i) (i + 1/2) / P``. A stretch longer than the training audio repeats it."""
    pooled = np.concatenate(as_signals(train))
    total, count = len(pooled), len(lengths)
    out = []
    for i, n in enumerate(lengths):
        if n <= total:
            start = int((total - n) * (i + 0.5) / count)
            out.append(pooled[start : start + n].copy())
        else:
            out.append(np.resize(np.roll(pooled, -(total * i) // count), n))
    return out


def _pooled_features(signals, rate, floor):
    feats = [log_mel_frames(s, rate, floor) for s in signals]
    return np.concatenate(feats) if feats else np.zeros((0, 2 * BANDS))


def _shares(signals, rate, silence):
    frames = [frame_count(len(s), rate) for s in signals]
    total = sum(frames)
    if not total:
        return 0.0, 0.0
    voiced = sum(voiced_share(s, rate, silence=silence) * k for s, k in zip(signals, frames))
    silent = sum(silent_share(s, rate, silence) * k for s, k in zip(signals, frames))
    return voiced / total, silent / total


def quality_report(generated, held_out, train, rate, seed=0):
    """Frechet distances, the quality score and voicing of generated audio.

    Args:
        generated: ``P`` generated streams: a list of arrays, or an array ``(P, n)``
            (one stream per row; an array ``(n,)`` is one stream).
        held_out: real held-out audio (an array or a list of arrays), in the same
            units; the features of every signal are compared with its frames.
        train: training audio (an array or a list of arrays), for the references.
        rate: Hz.
        seed: for the noise references.
    Returns:
        a JSON-serialisable dict:

        - ``rate``, ``streams`` (P), ``seconds`` (generated, all streams),
          ``held_out_seconds``, ``frames`` (generated frames scored);
        - ``fd``: ``{"model", "real", "lpc_noise", "white_noise"}`` -> Frechet
          distance to the held-out frames;
        - ``q``: ``(fd.lpc_noise - fd.model) / (fd.lpc_noise - fd.real)`` (None when
          the real and LPC references are equally far, e.g. too little audio);
        - ``q_white_noise``: the same score for the white-noise reference;
        - ``voiced`` and ``silent``: ``{"model", "held_out", "real", "lpc_noise",
          "white_noise"}`` -> share of frames;
        - ``floor`` and ``silence_rms``: the log floor (units squared) and silence
          threshold (units) used, -80 dB re the held-out mean mel-band power and
          -50 dB re the held-out RMS.
    """
    streams = as_signals(generated)
    return QualityJudge(held_out, train, rate, [len(s) for s in streams], seed).score(streams)


class QualityJudge:
    """:func:`quality_report` in two parts: everything that does not depend on the
    generated audio (held-out features, the references and their distances, the
    level constants) once, then :meth:`score` for each set of generated streams of
    the given ``lengths``. Training's listening check (``listen_every``) scores a
    model every epoch this way, against references computed once.

    Args:
        held_out, train, rate, seed: as :func:`quality_report`.
        lengths: samples of each generated stream the references are made to match.
    Raises:
        ValueError: held-out audio, or generated audio of ``lengths``, shorter than
            two frames.
    """

    def __init__(self, held_out, train, rate, lengths, seed=0):
        held = as_signals(held_out)
        self.rate, self.lengths = rate, [int(n) for n in lengths]
        held_power = np.concatenate([mel_power(s, rate) for s in held])
        frame = frame_sizes(rate)[0]
        # A Gaussian fit needs frames; say which input is too short instead of a NaN.
        if len(held_power) < 2:
            raise ValueError(f"held-out audio gives {len(held_power)} frames; need at least 2 of {frame} samples")
        if sum(frame_count(n, rate) for n in self.lengths) < 2:
            raise ValueError(f"generated audio gives under 2 frames of {frame} samples")
        # max(): silent held-out audio must still give a finite log.
        self.floor = max(float(np.mean(held_power) * 10 ** (FLOOR_DB / 10)), 1e-30)
        pooled_held = np.concatenate(held)
        self.held_out_seconds = float(len(pooled_held) / rate)
        self.silence = float(np.sqrt(np.mean(pooled_held**2)) * 10 ** (SILENCE_DB / 20))
        references = {
            "real": real_like(self.lengths, train),
            "lpc_noise": lpc_noise_like(self.lengths, train, seed=seed),
            "white_noise": white_noise_like(self.lengths, train, seed=seed + 1),
        }
        self._reference = _pooled_features(held, rate, self.floor)
        self.fd = {name: self._distance(s) for name, s in references.items()}
        self.voiced, self.silent = {}, {}
        for name, s in [("held_out", held)] + [(n, references[n]) for n in REFERENCES]:
            self.voiced[name], self.silent[name] = _shares(s, rate, self.silence)

    def _distance(self, signals):
        return frechet_distance(_pooled_features(signals, self.rate, self.floor), self._reference)

    def score(self, generated):
        """The :func:`quality_report` dict for ``generated`` (streams as there; their
        lengths should be the judge's ``lengths``, which the references match).

        Raises:
            ValueError: generated audio shorter than two frames.
        """
        streams = as_signals(generated)
        frames = sum(frame_count(len(s), self.rate) for s in streams)
        if frames < 2:
            raise ValueError(f"generated audio gives under 2 frames of {frame_sizes(self.rate)[0]} samples")
        fd = {"model": self._distance(streams), **self.fd}
        gap = fd["lpc_noise"] - fd["real"]
        score = (lambda name: float((fd["lpc_noise"] - fd[name]) / gap)) if gap > 0 else (lambda name: None)
        voiced, silent = _shares(streams, self.rate, self.silence)
        return {
            "rate": int(self.rate),
            "streams": len(streams),
            "seconds": float(sum(len(s) for s in streams) / self.rate),
            "held_out_seconds": self.held_out_seconds,
            "frames": int(frames),
            "fd": fd,
            "q": score("model"),
            "q_white_noise": score("white_noise"),
            "voiced": {"model": voiced, **self.voiced},
            "silent": {"model": silent, **self.silent},
            "floor": self.floor,
            "silence_rms": self.silence,
        }


def format_quality(report):
    """A short markdown table of a :func:`quality_report`: FD, q, voiced and silent
    shares for the model, the held-out audio and the references."""

    def cell(v, fmt):
        return "-" if v is None else format(v, fmt)

    q = {"model": report["q"], "real": 1.0, "lpc_noise": 0.0, "white_noise": report["q_white_noise"]}
    lines = [
        (
            f"generated: {report['streams']} streams, {report['seconds']:.1f} s; "
            f"held-out: {report['held_out_seconds']:.1f} s"
        ),
        "",
        "| audio | FD to held-out | q | voiced | silent |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("model", "held_out") + REFERENCES:
        fd = report["fd"].get(name, 0.0 if name == "held_out" else None)
        lines.append(
            f"| {name} | {cell(fd, '.1f')} | {cell(q.get(name), '+.2f')} | "
            f"{report['voiced'][name]:.2f} | {report['silent'][name]:.2f} |"
        )
    return "\n".join(lines)


def plot_spectrograms(generated, real, rate, path, seconds=None):
    """A PNG of the log spectrogram of ``generated`` above that of ``real`` (same
    colour scale, 25 ms Hann frames, 10 ms hop), written atomically.

    ``generated`` and ``real`` are 1-D (or anything :func:`as_signals` accepts; the
    first signal is drawn). ``seconds`` optionally crops both.
    """
    from ..files import atomic_path
    from ..plots import _pyplot

    frame, hop, nfft = frame_sizes(rate)
    panels = []
    for label, audio in (("generated", generated), ("real", real)):
        x = as_signals(audio)[0]
        if seconds is not None:
            x = x[: int(seconds * rate)]
        f = frames_of(x, frame, hop)
        if not len(f):
            f = np.zeros((1, frame))
        power = np.abs(np.fft.rfft(f * np.hanning(frame), nfft, axis=-1)) ** 2
        panels.append((label, 10 * np.log10(power + 1e-12).T))
    top = max(p.max() for _, p in panels)
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True, squeeze=False)
    for ax, (label, db) in zip(axes[:, 0], panels):
        extent = (0, db.shape[1] * hop / rate, 0, rate / 2000)
        image = ax.imshow(
            db, origin="lower", aspect="auto", extent=extent, vmin=top - 80, vmax=top, cmap="magma"
        )
        ax.set_ylabel(f"{label}\nkHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="dB")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
