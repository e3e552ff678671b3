"""Does the phone-conditioned speech recipe say its phones? Train under a time budget,
then judge intelligibility (issue "Say it: phone- and text-driven speech that a
recogniser understands").

For each corpus: train the speech recipe with phone conditioning (``--config speech
--set phones=current`` plus any ``--set``) with a time budget of ``--minutes``
(``max_minutes``: as many epochs as fit, the cosine learning rate annealed over them;
early stopping may end it sooner), then run the intelligibility report (``evaluate --intelligibility``:
PocketSphinx allphone PER of the real recordings, of the audio generated from each test
utterance's own ``.PHN`` timeline and of a shuffled-timeline control, and MCD-DTW of the
generated and control audio against the recordings) on the test utterances.

Writes

- ``--json`` (default ``docs/intelligibility.json``), one entry per corpus and settings
  (``prompts-real, phones=context``: :func:`result_key`): the summary,
  per-utterance rows, training time, load average, bits per sample, settings;
- two example WAVs per example utterance into ``--audio-dir`` (``docs/audio/``):
  ``<corpus>-<utt>-generated.wav`` (a fresh draw from the utterance's own timeline,
  primed with its first ``window`` samples, as the report does) and
  ``<corpus>-<utt>-real.wav``, 16-bit, cut to ``--clip-seconds``; the example draw is
  scored with the same recogniser, so its own PER is in the JSON;
- ``--plot`` (``docs/intelligibility-<corpus>.png``): log spectrograms, generated next
  to real, for the example utterances (one row each, one colour scale).

The load average is printed before and after training (the CPU may be shared).

    .venv/bin/python benchmarks/intelligibility.py --corpus prompts-real --minutes 30
    .venv/bin/python benchmarks/intelligibility.py --corpus prompts-real --minutes 0.5 \\
        --set max_batches=5 --runs /tmp/intel-runs --json /tmp/intel.json \\
        --audio-dir /tmp/intel-audio --plot-dir /tmp   # smoke size
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
CORPUS = {"prompts-real": CORPORA / "prompts-real", "timit-tts": CORPORA / "timit-tts"}


def load():
    return os.getloadavg()[0]


def pick_examples(pieces, rate, count, clip_seconds):
    """``count`` utterances to show: the longest ones that fit in ``clip_seconds``
    (whole utterances, so the WAV holds the complete sentence), in corpus order."""
    fits = [p for p in pieces if len(p) <= clip_seconds * rate] or list(pieces)
    chosen = {id(p) for p in sorted(fits, key=len, reverse=True)[:count]}
    return [p for p in pieces if id(p) in chosen]


def example_audio(model, piece, seed, temperature, sigma):
    """A fresh draw of ``piece`` from its own timeline and from the shuffled control,
    exactly as :func:`speechgen.intelligibility.intelligibility_report` generates
    them: ``(generated, control, real)`` floats in [-1, 1] of one length."""
    from speechgen.data.corpus import Normaliser
    from speechgen.data.phones import PhoneTrack, labelled_segments, model_inventory
    from speechgen.generate import Generator
    from speechgen.measures.intelligibility import shuffled_segments
    from speechgen.sample import timeline_steps

    normaliser = Normaliser.from_dict(model.normaliser)
    inventory, folding = model_inventory(model)
    w = model.window
    segments = labelled_segments(piece, folding)
    prime = normaliser.apply(piece.read(0, w))
    plans = [
        timeline_steps(model, PhoneTrack(s, len(piece), inventory, piece.labels), len(piece), prime, piece.name)
        for s in (segments, shuffled_segments(segments, seed))
    ]
    n_samples = plans[0][2]
    generator = Generator(model, streams=2, noise=sigma, seed=seed, temperature=temperature)
    out = generator.generate(np.stack([prime, prime]), n_samples - w, phones=np.stack([p[1] for p in plans]))
    generated, control = (normaliser.invert(np.concatenate([prime, o])) for o in out)
    return generated, control, piece.read(0, n_samples)


def log_spectrogram(x, rate):
    from speechgen.measures.quality import frame_sizes, frames_of

    frame, hop, nfft = frame_sizes(rate)
    f = frames_of(x, frame, hop)
    if not len(f):
        f = np.zeros((1, frame))
    power = np.abs(np.fft.rfft(f * np.hanning(frame), nfft, axis=-1)) ** 2
    return 10 * np.log10(power + 1e-12).T, hop


def plot_examples(examples, rate, path, title):
    """One row per example: generated (left) next to real (right), the log spectrogram
    of :func:`speechgen.measures.quality.plot_spectrograms` (25 ms Hann frames, 10 ms
    hop), one colour scale (80 dB below the loudest bin) for all panels."""
    from speechgen.files import atomic_path
    from speechgen.plots import _pyplot

    panels = [[(kind, *log_spectrogram(e[kind], rate)) for kind in ("generated", "real")] for e in examples]
    top = max(db.max() for row in panels for _, db, _ in row)
    plt = _pyplot()
    fig, axes = plt.subplots(len(examples), 2, figsize=(12, 3.2 * len(examples)), squeeze=False, layout="constrained")
    for r, (e, row) in enumerate(zip(examples, panels)):
        for c, (kind, db, hop) in enumerate(row):
            ax = axes[r, c]
            extent = (0, db.shape[1] * hop / rate, 0, rate / 2000)
            image = ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=top - 80, vmax=top, cmap="magma")
            per = e["row"][f"per_{kind}"]
            ax.set_title(f"{e['name']}: {kind} (PER {per:.2f})", fontsize=9)
            ax.set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="dB")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72)
    plt.close(fig)


def run_corpus(corpus_name, minutes, sets, runs, utterances, temperature, seed, audio_dir, plot_path,
               n_examples, clip_seconds, extra_temperatures=(), data_path=None):
    from speechgen.config import load_config
    from speechgen.data.audio import write_wav
    from speechgen.data.corpus import reopen_corpus
    from speechgen.intelligibility import intelligibility_report, judged_pieces
    from speechgen.measures.intelligibility import (
        Recogniser,
        format_report,
        score_utterance,
    )
    from speechgen.model import load_model
    from speechgen.sample import generation_settings
    from speechgen.train import train

    run = runs / f"speech-phones-{corpus_name}"
    overrides = ["phones=current", *sets]
    config = load_config(["speech"], [f"max_minutes={minutes}", *overrides])
    load_before = load()
    print(f"load average before training: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    result = train(data_path or CORPUS[corpus_name], run, config, force=True, verbose=2)
    train_s = time.perf_counter() - started
    load_after = load()
    print(f"load average after training: {os.getloadavg()}", flush=True)
    s = result.summary
    print(f"training: {train_s:.1f} s wall (train() call, final evaluation included), {s['epochs']} epochs, "
          f"{s['seconds_total']:.1f} s in epochs ({s['seconds_per_epoch']:.1f} s per epoch), stopped: {s['stopped']}",
          flush=True)

    model = load_model(run / "model.keras")
    data = reopen_corpus(model.train_config)
    recogniser = Recogniser()
    report_started = time.perf_counter()
    report = intelligibility_report(
        model, data, utterances=utterances, temperature=temperature, seed=seed, recogniser=recogniser,
        progress=lambda done, total: print(f"  judged {done}/{total}", flush=True) if done % 8 == 0 or done == total else None,
    )
    report_s = time.perf_counter() - report_started
    report.update(model=str(run / "model.keras"), data=str(data.source))
    print(format_report(report), flush=True)
    (run / "intelligibility.json").write_text(json.dumps(report, indent=2, default=float) + "\n")  # kept if later steps fail

    # Examples: a fresh draw (own seed), scored with the same recogniser.
    _split, pieces = judged_pieces(data)
    pieces = pieces[:utterances] if utterances else pieces
    t, sigma = generation_settings(model, temperature)
    examples = []
    audio_dir.mkdir(parents=True, exist_ok=True)
    for k, piece in enumerate(pick_examples(pieces, model.sample_rate, n_examples, clip_seconds)):
        generated, control, real = example_audio(model, piece, seed + 1000 + k, t, sigma)
        row = score_utterance(recogniser, [x.phone for x in piece.segments], real, generated, control, model.sample_rate)
        stem = str(Path(piece.name).with_suffix("")).replace("/", "-").lower()
        n = int(clip_seconds * model.sample_rate)
        files = {}
        for kind, audio in (("generated", generated), ("real", real)):
            path = audio_dir / f"{corpus_name}-{stem}-{kind}.wav"
            write_wav(path, model.sample_rate, audio[:n])
            files[kind] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        examples.append({"name": piece.name, "seconds": len(real) / model.sample_rate, "files": files, "row": row,
                         "generated": generated[:n], "real": real[:n]})
        print(f"example {piece.name}: PER real {row['per_real']:.3f}, generated {row['per_generated']:.3f}, "
              f"control {row['per_control']:.3f}; MCD gen {row['mcd_generated']:.2f}, ctrl {row['mcd_control']:.2f}",
              flush=True)
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    plot_examples(examples, model.sample_rate, plot_path,
                  f"{corpus_name}: speech recipe, {settings_label(overrides)}, {minutes:g}-minute budget; "
                  "generated (left) vs real (right)")

    # Secondary: the same report at other temperatures (summaries only; the figures
    # above, at --temperature, are the primary ones).
    others = {}
    for extra in extra_temperatures:
        began = time.perf_counter()
        other = intelligibility_report(model, data, utterances=utterances, temperature=extra, seed=seed,
                                       recogniser=recogniser)
        others[f"{extra:g}"] = {**other["summary"], "report_seconds": time.perf_counter() - began}
        o = other["summary"]
        print(f"temperature {extra:g}: PER real {o['per_real']:.3f}, generated {o['per_generated']:.3f}, control "
              f"{o['per_control']:.3f}; MCD gen {o['mcd_generated']:.2f}, ctrl {o['mcd_control']:.2f}", flush=True)

    bits = {k: (v or {}).get("bits", {}).get("model") for k, v in (s["splits_mse"] or {}).items()}
    summary = report["summary"]
    targets = {
        "per_at_most_1.3x_real": summary["per_generated"] <= 1.3 * summary["per_real"],
        "per_0.2_below_control": summary["per_control"] - summary["per_generated"] >= 0.2,
        "mcd_below_control": summary["mcd_generated"] < summary["mcd_control"],
    }
    return {
        "corpus": corpus_name, "recipe": "speech", "overrides": overrides, "minutes_budget": minutes,
        "parameters": s["parameters"], "epochs": s["epochs"], "best_epoch": s["best_epoch"], "stopped": s["stopped"],
        "train_seconds": train_s, "epoch_seconds_total": s["seconds_total"], "seconds_per_epoch": s["seconds_per_epoch"],
        "bits_per_sample": bits, "load_before": load_before, "load_after": load_after,
        "temperature": t, "seed": seed, "split": report["split"], "report_seconds": report_s,
        "summary": summary, "targets": targets, "other_temperatures": others, "rows": report["rows"],
        "examples": [{k: v for k, v in e.items() if k not in ("generated", "real")} for e in examples],
        "plot": str(plot_path.relative_to(ROOT) if plot_path.is_relative_to(ROOT) else plot_path),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", required=True, choices=sorted(CORPUS))
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--utterances", type=int, default=None, help="judge only the first N test utterances")
    parser.add_argument("--temperature", type=float, default=None, help="softmax temperature (default 1)")
    parser.add_argument("--extra-temperature", type=float, action="append", default=[],
                        help="also report the summary at this temperature (secondary figures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None,
                        help="train on this corpus folder instead (smoke checks on a few utterances)")
    parser.add_argument("--examples", type=int, default=2)
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="longest example WAV (16-bit: 32 KB/s)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "intelligibility")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "intelligibility.json")
    parser.add_argument("--audio-dir", type=Path, default=ROOT / "docs" / "audio")
    parser.add_argument("--plot-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    for corpus in args.corpus:
        r = run_corpus(
            corpus, args.minutes, args.sets, args.runs, args.utterances, args.temperature, args.seed,
            args.audio_dir, args.plot_dir / f"intelligibility-{corpus}.png", args.examples, args.clip_seconds,
            args.extra_temperature, args.data,
        )
        results = json.loads(args.json.read_text()) if args.json.exists() else {}
        results[result_key(corpus, r["overrides"])] = r
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
        s = r["summary"]
        print(f"{corpus}: PER real {s['per_real']:.3f}, generated {s['per_generated']:.3f} "
              f"({s['per_ratio']:.2f} x real), control {s['per_control']:.3f}; MCD gen {s['mcd_generated']:.2f} "
              f"vs control {s['mcd_control']:.2f} dB; targets {r['targets']}; trained {r['train_seconds']:.0f} s, "
              f"load {r['load_before']:.2f} -> {r['load_after']:.2f}", flush=True)


def settings_label(overrides):
    """The settings a run changed, as :func:`result_key` names them (``phones=context,
    pre_emphasis=0.85``): for plot titles."""
    return result_key("", overrides).lstrip(", ")


def result_key(corpus, overrides):
    """The JSON key of one run: the corpus, the phones setting and any other ``--set``
    (``prompts-real, phones=context``), so runs with other settings sit side by side."""
    phones = [o for o in overrides if o.startswith("phones=")][-1]
    return ", ".join([corpus, phones, *(o for o in overrides if not o.startswith("phones="))])


if __name__ == "__main__":
    main()
