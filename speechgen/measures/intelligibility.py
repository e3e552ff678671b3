"""Is it speech? Phone error rates from a recogniser and mel-cepstral distortion.

* **Recogniser**: PocketSphinx in allphone mode (phone recognition with a phone n-gram
  language model, no words), with the en-us acoustic model and the phone LM that its
  PyPI wheel ships (``pocketsphinx.get_model_path()``): nothing is downloaded. The
  settings are CMU's published ones for phone recognition (``beam = pbeam = 1e-20``,
  ``lw = 2.0``). Audio at another rate is resampled to its 16 kHz. It is far from
  perfect on real speech too, so the report gives its PER on the real recordings as
  the calibration of the generated speech's.
* **PER**: the Levenshtein distance (substitutions, deletions, insertions, each 1)
  between the reference phones and the recognised ones, over the number of reference
  phones. Both sides are mapped to the 39 CMU phones and silences dropped
  (:func:`speechgen.data.pronounce.to_cmu`). A corpus' PER is its total edits over
  its total reference phones.
* **MCD-DTW**: the mel-cepstral distortion of the ``mel-cepstral-distance`` package
  (Kubichek 1993; 32 ms Hann frames every 8 ms, 20 mel bands, cepstral coefficients
  1-15, in dB), after aligning the two utterances' mel spectra with DTW (Sakoe-Chiba
  radius 10). Identical audio gives 0.

pocketsphinx and mel-cepstral-distance are imported inside the functions, so importing
speechgen stays fast.
"""

import os
import tempfile
from pathlib import Path

import numpy as np

from ..data.pronounce import CMU_PHONES, to_cmu

RECOGNISER_RATE = 16000


def edit_distance(reference, hypothesis):
    """Levenshtein distance between two sequences (unit costs)."""
    ref, hyp = list(reference), list(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def phone_error_rate(reference, hypothesis):
    """Edits over reference phones, both mapped to CMU 39 with silences dropped."""
    ref, hyp = to_cmu(reference), to_cmu(hypothesis)
    if not ref:
        raise ValueError("no reference phones (only silence)")
    return edit_distance(ref, hyp) / len(ref)


class Recogniser:
    """PocketSphinx allphone decoding: ``phones(samples, rate)`` -> CMU phones."""

    def __init__(self):
        import pocketsphinx

        models = os.path.join(pocketsphinx.get_model_path(), "en-us")
        self._decoder = pocketsphinx.Decoder(
            hmm=os.path.join(models, "en-us"), allphone=os.path.join(models, "en-us-phone.lm.bin"),
            beam=1e-20, pbeam=1e-20, lw=2.0, samprate=RECOGNISER_RATE, loglevel="FATAL",
        )

    def phones(self, samples, rate):
        """The phones recognised in float ``samples`` (in [-1, 1]) at ``rate`` Hz, as
        CMU 39 phones in lower case; silences and noise fillers dropped."""
        x = np.asarray(samples, np.float64)
        if rate != RECOGNISER_RATE:
            from math import gcd

            from scipy.signal import resample_poly

            g = gcd(int(rate), RECOGNISER_RATE)
            x = resample_poly(x, RECOGNISER_RATE // g, int(rate) // g)
        pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
        # PocketSphinx's front end carries state (the live cepstral mean, the noise
        # floor) from one utterance into the next, so a recording's phones depended on
        # what was decoded before it (in the report, the previous utterance's generated
        # audio). Reinitialised, every utterance is decoded as if it were the first.
        self._decoder.reinit_feat()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm.tobytes(), full_utt=True)
        self._decoder.end_utt()
        words = [s.word for s in self._decoder.seg()]
        return [p for p in to_cmu(words) if p in CMU_PHONES]


def mcd_dtw(a, b, rate):
    """Mel-cepstral distortion (dB) between float signals ``a`` and ``b`` at ``rate``
    after DTW alignment (see the module docstring); NaN if either is empty."""
    from mel_cepstral_distance import compare_audio_files

    from ..data.audio import write_wav

    with tempfile.TemporaryDirectory(prefix="speechgen-mcd-") as tmp:
        paths = [Path(tmp) / f"{k}.wav" for k in "ab"]
        for path, x in zip(paths, (a, b)):
            write_wav(path, rate, np.clip(np.asarray(x, np.float64), -1, 1))
        mcd, _penalty = compare_audio_files(*paths, aligning="dtw", dtw_radius=10)
    return float(mcd)


def shuffled_segments(segments, seed, silences=("h#", "pau", "epi", "sil")):
    """The same segments (starts and ends) with the phones of the non-silent ones
    permuted (seeded); silences stay where they are, so the control keeps the
    utterance's pauses and length and differs only in which phone is said when."""
    rng = np.random.default_rng(seed)
    speech = [i for i, s in enumerate(segments) if s.phone not in silences]
    phones = [segments[i].phone for i in speech]
    order = rng.permutation(len(phones))
    out = list(segments)
    for i, k in zip(speech, order):
        out[i] = out[i]._replace(phone=phones[k])
    return out


def summarise(rows):
    """Corpus figures from per-utterance rows: PERs as total edits / total phones,
    MCDs as means; ``per_ratio`` = generated / real PER."""
    phones = sum(r["phones"] for r in rows)
    out = {"utterances": len(rows), "phones": phones}
    for kind in ("real", "generated", "control"):
        edits = sum(r[f"edits_{kind}"] for r in rows if r.get(f"edits_{kind}") is not None)
        out[f"per_{kind}"] = edits / phones if phones else None
    for kind in ("generated", "control"):
        values = [r[f"mcd_{kind}"] for r in rows if np.isfinite(r[f"mcd_{kind}"])]
        out[f"mcd_{kind}"] = float(np.mean(values)) if values else None
    out["per_ratio"] = out["per_generated"] / out["per_real"] if out["per_real"] else None
    return out


def score_utterance(recogniser, labels, real, generated, control, rate):
    """One utterance's row: reference ``labels`` (phones), the real recording and the
    generated and control audio (floats in [-1, 1] at ``rate``)."""
    reference = to_cmu(labels)
    row = {"phones": len(reference), "reference": " ".join(reference)}
    for kind, audio in (("real", real), ("generated", generated), ("control", control)):
        said = recogniser.phones(audio, rate)
        row[f"recognised_{kind}"] = " ".join(said)
        row[f"edits_{kind}"] = edit_distance(reference, said)
        row[f"per_{kind}"] = row[f"edits_{kind}"] / len(reference) if reference else None
    row["mcd_generated"] = mcd_dtw(generated, real, rate)
    row["mcd_control"] = mcd_dtw(control, real, rate)
    return row


def format_report(report):
    """The per-utterance table and the corpus line."""
    lines = [
        f"{report['model']} on {report['data']}: {report['summary']['utterances']} {report['split']} utterances, "
        f"{report['summary']['phones']} phones (PocketSphinx allphone PER vs the .PHN labels, CMU 39, "
        "silences dropped; MCD-DTW in dB vs the real recording)",
        f"{'utterance':<28} {'phones':>6} {'PER real':>9} {'PER gen':>8} {'PER ctrl':>9} {'MCD gen':>8} {'MCD ctrl':>9}",
    ]

    def num(x, width, fmt="{:.3f}"):
        return f"{'-' if x is None else fmt.format(x):>{width}}"

    for r in report["rows"]:
        lines.append(
            f"{r['name'][:28]:<28} {r['phones']:>6} {num(r['per_real'], 9)} {num(r['per_generated'], 8)} "
            f"{num(r['per_control'], 9)} {num(r['mcd_generated'], 8, '{:.2f}')} {num(r['mcd_control'], 9, '{:.2f}')}"
        )
    s = report["summary"]
    lines.append(
        f"{'all':<28} {s['phones']:>6} {num(s['per_real'], 9)} {num(s['per_generated'], 8)} "
        f"{num(s['per_control'], 9)} {num(s['mcd_generated'], 8, '{:.2f}')} {num(s['mcd_control'], 9, '{:.2f}')}"
    )
    if s["per_ratio"] is not None:
        lines.append(
            f"generated PER = {s['per_ratio']:.2f} x the real recordings' PER; control PER - generated PER = "
            f"{s['per_control'] - s['per_generated']:+.3f}"
        )
    return "\n".join(lines)
