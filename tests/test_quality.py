"""Generation quality: log-mel frames, Frechet distance, voicing, the q score."""

import json
import warnings

import numpy as np
import pytest
from scipy.signal import lfilter

from conftest import CORPORA, requires_corpora
from speechgen.measures import quality as Q

RATE = 16000


# ----------------------------------------------------------------- synthetic speech

VOWELS = ((800, 1200, 2800), (300, 2300, 3000), (350, 800, 2500), (500, 1900, 2700), (500, 900, 2600))
BANDWIDTHS = (80.0, 100.0, 150.0)


def _resonator(freq, bandwidth, rate):
    r = np.exp(-np.pi * bandwidth / rate)
    return np.array([1.0 - r]), np.array([1.0, -2 * r * np.cos(2 * np.pi * freq / rate), r * r])


def speech_like(seconds, seed, rate=RATE):
    """A speech-like signal: words of 2-5 syllables (120-250 ms) with 150-400 ms
    pauses (room noise at 1e-4). A syllable is a vowel (80%): a glottal pulse train
    (170-240 Hz, falling through the word, 4% vibrato) through two poles
    (-12 dB/octave) and lip radiation (+6), then three formant resonators of one of
    five vowels; or a fricative: noise through a wide 3.5-6 kHz resonance. Filter
    states carry across syllables, as a vocal tract's would."""
    rng = np.random.default_rng(seed)
    n_total = int(seconds * rate)
    out, tract, glottis, phase = [], [np.zeros(2) for _ in BANDWIDTHS], np.zeros(2), 0.0
    while sum(map(len, out)) < n_total:
        f0 = rng.uniform(170, 240)
        for k in range(rng.integers(2, 6)):
            n = int(rng.uniform(0.12, 0.25) * rate)
            t = np.arange(n) / rate
            envelope = np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 0.5
            if rng.random() < 0.8:
                vibrato = 1 + 0.04 * np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6))
                cycles = phase + np.cumsum(f0 * (1 - 0.03 * k) * vibrato / rate)
                pulses = np.diff(np.floor(cycles), prepend=np.floor(phase))
                phase = cycles[-1]
                y, glottis = lfilter([1.0], np.convolve([1, -0.97], [1, -0.97]), pulses, zi=glottis)
                y = np.diff(y, prepend=y[0])
                for i, (f, b) in enumerate(zip(VOWELS[rng.integers(len(VOWELS))], BANDWIDTHS)):
                    y, tract[i] = lfilter(*_resonator(f * rng.uniform(0.95, 1.05), b, rate), y, zi=tract[i])
                y = 40 * y * envelope * rng.uniform(0.6, 1.0)
            else:
                hiss = _resonator(rng.uniform(3500, 6000), 2000.0, rate)
                y = 0.15 * lfilter(*hiss, rng.standard_normal(n)) * envelope
            out.append(y)
        out.append(np.zeros(int(rng.uniform(0.15, 0.4) * rate)))
    return np.concatenate(out)[:n_total] + 1e-4 * rng.standard_normal(n_total)


def harmonic_tone(f0, seconds, rate=RATE, harmonics=10, amp=0.1):
    t = np.arange(int(seconds * rate)) / rate
    return amp * sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, harmonics + 1))


# ----------------------------------------------------------------- Frechet distance


def _whitened(rng, frames, dims):
    """Frames with sample mean exactly 0 and sample covariance exactly I."""
    z = rng.standard_normal((frames, dims))
    z -= z.mean(axis=0)
    return z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 0.1])
    a = _whitened(rng, 500, 3) * s1 + mu1
    b = _whitened(rng, 700, 3) * s2 + mu2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)  # 9.25 + 4.16 = 13.41
    assert Q.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # 1-D samples: N(0, 1) against N(3, 2^2) -> 3^2 + (1 - 2)^2 = 10.
    x, y = _whitened(rng, 300, 1)[:, 0], 3 + 2 * _whitened(rng, 300, 1)[:, 0]
    assert Q.frechet_distance(x, y) == pytest.approx(10.0, rel=1e-9)


def test_frechet_distance_with_full_covariances_matches_the_eigenvalue_form():
    # tr sqrt(S_a S_b) is the sum of the square roots of the eigenvalues of S_a S_b
    # (real and non-negative); covariances that do not commute exercise sqrtm.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2000, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((1500, 6)) @ rng.standard_normal((6, 6)) + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    roots = np.sqrt(np.clip(np.linalg.eigvals(s_a @ s_b).real, 0, None)).sum()
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * roots
    assert Q.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_a_set_with_itself_is_zero_even_when_singular():
    rng = np.random.default_rng(2)
    frames = rng.standard_normal((400, 80)) @ rng.standard_normal((80, 80))
    assert Q.frechet_distance(frames, frames) == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(frames.T)))
    constant = np.full((300, 80), -5.0)  # what digital silence gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Q.frechet_distance(constant, constant) == pytest.approx(0.0, abs=1e-4)
        # Against a spread set: the mean term plus the other set's variance.
        varied = _whitened(rng, 500, 80)
        assert Q.frechet_distance(constant, varied) == pytest.approx(80 * 25 + 80, rel=1e-3)


# ----------------------------------------------------------------- features


def test_mel_scale_reference_values():
    assert Q.hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert Q.hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)  # HTK: 1 kHz ~ 1000 mel
    assert Q.mel_to_hz(Q.hz_to_mel(3210.0)) == pytest.approx(3210.0)


def test_mel_filterbank_is_triangles_covering_the_range_summing_to_one():
    nfft = 512
    bank = Q.mel_filterbank(RATE, nfft, 40)
    freqs = np.arange(nfft // 2 + 1) * RATE / nfft
    assert bank.shape == (40, 257) and bank.min() >= 0 and bank.max() <= 1
    assert np.all(np.diff(np.argmax(bank, axis=1)) >= 0)
    # Each row rises to its peak, then falls: one triangle, no second bump.
    for row in bank:
        support = row[row > 0]
        peak = np.argmax(support)
        assert np.all(np.diff(support[: peak + 1]) >= 0) and np.all(np.diff(support[peak:]) <= 0)
    # Neighbours overlap so that every bin between the first and last centre sums to 1.
    corners = Q.mel_to_hz(np.linspace(0, Q.hz_to_mel(RATE / 2), 42))
    between = (freqs > corners[1]) & (freqs < corners[-2])
    np.testing.assert_allclose(bank[:, between].sum(axis=0), 1.0, rtol=1e-12)
    # The lowest filter starts at 0 Hz, the highest reaches up to Nyquist.
    assert bank[0, 0] == 0 and bank[0, 1] > 0 and bank[-1, -2] > 0
    # Widths grow with frequency (equal in mel).
    widths = (bank > 0).sum(axis=1)
    assert widths[-1] > 5 * widths[0]


def test_log_mel_frames_shape_and_gain():
    x = np.random.default_rng(3).standard_normal(RATE) * 0.1  # 1 s
    feats = Q.log_mel_frames(x, RATE, floor=0.0)
    assert feats.shape == (1 + (RATE - 400) // 160, 80) == (98, 80)
    assert Q.log_mel_frames(x[:399], RATE).shape == (0, 80)
    assert Q.log_mel_frames(x[:400], RATE).shape == (1, 80)
    # A gain g shifts the log powers by 2 ln g and leaves the deltas alone.
    louder = Q.log_mel_frames(10 * x, RATE, floor=0.0)
    np.testing.assert_allclose(louder[:, :40] - feats[:, :40], 2 * np.log(10), rtol=1e-9)
    np.testing.assert_allclose(louder[:, 40:], feats[:, 40:], atol=1e-9)
    # A 1 kHz tone is loudest in the band whose centre is nearest 1 kHz.
    tone = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)
    centres = Q.mel_to_hz(np.linspace(0, Q.hz_to_mel(RATE / 2), 42))[1:-1]
    assert np.argmax(Q.log_mel_frames(tone, RATE)[:, :40].mean(0)) == np.argmin(abs(centres - 1000))


def test_deltas_are_the_regression_slope():
    ramp = np.arange(10.0)[:, None] * np.array([[1.0, -3.0]])
    d = Q.deltas(ramp)
    np.testing.assert_allclose(d[2:-2], [[1.0, -3.0]] * 6)
    # Edge frames repeat: at t = 0, (1*(1-0) + 2*(2-0)) / 10 = 0.5.
    np.testing.assert_allclose(d[0], [0.5, -1.5])


# ----------------------------------------------------------------- voicing


def test_a_harmonic_tone_is_voiced_noise_is_not_silence_is_silent():
    rng = np.random.default_rng(4)
    tone = harmonic_tone(150.0, 2.0)
    assert Q.voiced_share(tone, RATE) > 0.9
    assert Q.silent_share(tone, RATE) == 0.0
    noise = 0.1 * rng.standard_normal(2 * RATE)
    assert Q.voiced_share(noise, RATE) < 0.1
    silence = np.zeros(2 * RATE)
    assert Q.voiced_share(silence, RATE) == 0.0
    assert Q.silent_share(silence, RATE) == 1.0
    # Half tone, half silence: 2 s gives 198 frames, 98 wholly in the tone.
    half = np.concatenate([harmonic_tone(150.0, 1.0), np.zeros(RATE)])
    assert Q.voiced_share(half, RATE) == pytest.approx(98 / 198, abs=0.02)
    assert Q.silent_share(half, RATE) == pytest.approx(98 / 198, abs=0.02)
    # A quiet tone under the silence threshold is silent, and so not voiced.
    assert Q.voiced_share(1e-3 * tone, RATE, silence=1e-3) == 0.0


def test_pitch_range_and_low_pass_noise():
    # 80 and 350 Hz voices are inside 60-400 Hz.
    assert Q.voiced_share(harmonic_tone(80.0, 1.0), RATE) > 0.9
    assert Q.voiced_share(harmonic_tone(350.0, 1.0), RATE) > 0.9
    # Strongly low-passed noise has r ~ 0.8 at the shortest pitch lag only because r
    # falls from lag 0; counting local peaks only keeps it mostly unvoiced.
    noise = lfilter([1.0], [1.0, -0.995], np.random.default_rng(5).standard_normal(2 * RATE))
    assert Q.voiced_share(noise, RATE) < 0.2


# ----------------------------------------------------------------- the report


def _scores(generated, held_out, train, seed=0):
    return {
        name: Q.quality_report(audio, held_out, train, RATE, seed=seed)
        for name, audio in generated.items()
    }


def _candidates(real_streams, train):
    lengths = [len(s) for s in real_streams]
    return {
        "real": real_streams,
        # Other seeds than the report's own references, so nothing scores itself.
        "lpc_noise": Q.lpc_noise_like(lengths, train, seed=11),
        "white_noise": Q.white_noise_like(lengths, train, seed=12),
        "silence": [np.zeros(n) for n in lengths],
    }


@pytest.fixture(scope="module")
def synthetic():
    train = speech_like(30, seed=1)
    held_out = speech_like(15, seed=2)
    streams = [speech_like(5, seed=s) for s in (3, 4, 5)]
    return train, held_out, streams, _scores(_candidates(streams, train), held_out, train)


def _check_scale(reports):
    q = {name: r["q"] for name, r in reports.items()}
    assert q["real"] > 0.7
    assert abs(q["lpc_noise"]) < 0.3
    assert q["silence"] < -0.5 and q["silence"] < q["white_noise"] - 0.3
    assert q["real"] > q["lpc_noise"] > q["white_noise"] > q["silence"]
    return q


def test_quality_scale_on_synthetic_speech(synthetic):
    _, _, _, reports = synthetic
    _check_scale(reports)
    real = reports["real"]
    # Speech-like audio has pitch and pauses; the noise references have neither.
    assert real["voiced"]["model"] > 0.4 and real["voiced"]["held_out"] > 0.4
    assert real["silent"]["model"] > 0.1 and real["silent"]["held_out"] > 0.1
    for name in ("lpc_noise", "white_noise"):
        assert real["voiced"][name] < 0.1 and real["silent"][name] == 0.0
    assert reports["silence"]["silent"]["model"] == 1.0
    # The report names its own references' scores consistently.
    assert real["q_white_noise"] == pytest.approx(reports["white_noise"]["q"], abs=0.05)
    json.dumps(real)  # plain, serialisable


def test_quality_counts_loudness_but_not_units(synthetic):
    train, held_out, streams, reports = synthetic
    # Real audio 20 dB too loud is far from real; noise 10 dB off is worse than noise.
    loud = Q.quality_report([10 * s for s in streams], held_out, train, RATE)
    assert loud["q"] < reports["real"]["q"] - 0.2
    lengths = [len(s) for s in streams]
    off = Q.quality_report([3 * s for s in Q.lpc_noise_like(lengths, train, seed=11)], held_out, train, RATE)
    assert off["q"] < reports["lpc_noise"]["q"] - 0.2
    # One gain on everything (other units) changes nothing.
    scaled = Q.quality_report([7 * s for s in streams], 7 * held_out, 7 * train, RATE)
    assert scaled["q"] == pytest.approx(reports["real"]["q"], abs=1e-6)
    assert scaled["voiced"] == pytest.approx(reports["real"]["voiced"])


def test_report_accepts_an_array_of_streams_and_formats(synthetic):
    train, held_out, streams, reports = synthetic
    as_array = Q.quality_report(np.stack(streams), [held_out], [train], RATE)
    assert as_array["q"] == pytest.approx(reports["real"]["q"], rel=1e-9)
    assert as_array["streams"] == 3 and as_array["seconds"] == pytest.approx(15.0)
    with pytest.raises(ValueError, match="held-out audio gives 0 frames"):
        Q.quality_report(streams, held_out[:100], train, RATE)
    with pytest.raises(ValueError, match="generated audio"):
        Q.quality_report([streams[0][:300]], held_out, train, RATE)
    table = Q.format_quality(reports["real"])
    assert "| model |" in table and "| lpc_noise |" in table
    assert f"{reports['real']['q']:+.2f}" in table


def test_real_like_spreads_stretches_over_the_training_audio():
    train = [np.arange(100.0), np.arange(100.0, 200.0)]
    stretches = Q.real_like([20, 20, 20, 20], train)
    assert [s[0] for s in stretches] == [22, 67, 112, 157]  # (200 - 20) (i + 1/2) / 4
    assert all(len(s) == 20 and np.all(np.diff(s) == 1) for s in stretches)
    assert len(Q.real_like([500], train)[0]) == 500


def test_lpc_noise_has_the_training_spectrum_and_loudness():
    # AR(2) training audio: its fitted filter reproduces the coefficients and RMS.
    rng = np.random.default_rng(6)
    train = lfilter([1.0], [1.0, -1.6, 0.8], rng.standard_normal(200_000)) * 0.01
    a, variance, _ = Q.fit_ar(train, order=2)
    np.testing.assert_allclose(a, [1.6, -0.8], atol=0.01)
    assert variance == pytest.approx(1e-4, rel=0.02)
    noise = Q.lpc_noise_like([100_000], train, order=8, seed=1)[0]
    assert np.std(noise) == pytest.approx(np.std(train), rel=0.05)
    white = Q.white_noise_like([100_000], train)[0]
    assert np.std(white) == pytest.approx(np.std(train), rel=0.02)


def test_plot_spectrograms_writes_a_png(tmp_path):
    path = tmp_path / "spectra.png"
    Q.plot_spectrograms(harmonic_tone(150.0, 1.0), speech_like(1, seed=0), RATE, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["spectra.png"]


# ----------------------------------------------------------------- real speech


def _prompts():
    from scipy.io import wavfile

    files = sorted((CORPORA / "prompts-real").glob("*.wav"))
    return [wavfile.read(f)[1].astype(np.float64) / 32768 for f in files]


@requires_corpora("prompts-real")
@pytest.mark.corpus
@pytest.mark.slow
def test_quality_scale_on_real_speech():
    utterances = _prompts()
    # Half the utterances train, a quarter are the held-out audio, and the last
    # quarter, cut into 4 streams, stand in for a model that speaks like the speaker.
    train, held_out = utterances[0::2], utterances[1::4]
    streams = np.array_split(np.concatenate(utterances[3::4]), 4)
    reports = _scores(_candidates(streams, train), held_out, train)
    q = _check_scale(reports)
    voiced = reports["real"]["voiced"]
    assert voiced["model"] > 0.5 and voiced["held_out"] > 0.5 and voiced["white_noise"] < 0.1
    assert 0.02 < reports["real"]["silent"]["held_out"] < 0.3
    print({k: round(v, 3) for k, v in q.items()}, {k: round(v, 3) for k, v in voiced.items()},
          {k: round(v, 3) for k, v in reports["real"]["silent"].items()})
