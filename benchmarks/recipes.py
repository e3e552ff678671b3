"""Recipes under one time budget: train, then score bits per sample, generation quality
and drift (issue "Generate audio that sounds like its training data").

For each (recipe, corpus) pair: train with a time budget of ``--minutes``
(``max_minutes``: the run plans as many of its epochs as fit and ends within the
budget; a cosine learning rate anneals over them; early stopping may end sooner), then

- ``evaluate``: test bits per sample next to the histogram and LPC baselines
  (categorical heads), test MSE next to zero / persistence (all heads);
- free-running generation from 4 held-out primes for ``--seconds`` seconds
  (categorical: ``--temperature``; MSE: noise of 1 x the validation RMSE, the drift
  recipe's setting): the quality score q, voiced and silent shares, stable seconds.

Writes ``docs/recipes.json`` (merged per pair, so pairs can be run one at a time) and
prints one table row per pair. The load average is printed before and after each pair
(the CPU may be shared).

    .venv/bin/python benchmarks/recipes.py --recipe speech --corpus prompts-real --minutes 30
"""

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
CORPUS = {
    "prompts-real": CORPORA / "prompts-real",
    "music-real": CORPORA / "music-real" / "drascula-16k.wav",
    "timit-tts": CORPORA / "timit-tts",
}
# The MSE recipes of earlier sessions: the drift recipe (sample level) and frame200.
MSE_NOISE = {"music-sample": 1.0, "sample-phones": 1.0, "frame200": 0.0, "demo": 0.0}


def load():
    return os.getloadavg()[0]


def _slug(label):
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")


def run_pair(recipe, corpus, minutes, seconds, temperature, out_root, sets=(), label=""):
    from speechgen.config import load_config
    from speechgen.data.corpus import reopen_corpus
    from speechgen.evaluate import evaluate_model
    from speechgen.measures.drift import free_running_report
    from speechgen.model import load_model
    from speechgen.train import train

    # One run directory per pair and label: a second arm never overwrites the first.
    run = out_root / "-".join(filter(None, [recipe, corpus, _slug(label)]))
    config = load_config([recipe], ["phones=none", f"max_minutes={minutes}", *sets])
    load_before = load()
    started = time.perf_counter()
    result = train(CORPUS[corpus], run, config, force=True, verbose=2)
    train_s = time.perf_counter() - started
    model = load_model(run / "model.keras")
    data = reopen_corpus(model.train_config)
    splits = evaluate_model(model, data, splits=("test",))
    categorical = model.head.kind == "categorical"
    report = free_running_report(
        model, data, seconds, primes=4, temperature=temperature if categorical else 1.0,
        noise=0.0 if categorical else MSE_NOISE.get(recipe, 1.0),
    )
    q = report["quality"]
    test = splits["test"]
    return {
        "recipe": recipe, "corpus": corpus, "head": model.head.describe(), "parameters": model.count_params(),
        "epochs": result.summary["epochs"], "stopped": result.summary["stopped"], "train_seconds": train_s, "seconds_per_epoch": result.summary["seconds_per_epoch"],
        "test_bits": test.get("bits"), "test_mse": {k: test[k] for k in ("model", "zero", "persistence")},
        # How the test figure was scored: the share of steps, and of chunks started cold.
        "test_coverage": test["coverage"], "test_cold": test["cold"],
        "q": q["q"], "fd": q["fd"], "voiced": q["voiced"], "silent": q["silent"],
        "stable_seconds": report["stable_seconds"], "generated_seconds": report["seconds"],
        "real_end_to_end": report["real_end_to_end"], "out_of_range": report["out_of_range"],
        "temperature": report["temperature"], "noise": report["noise"],
        "load_before": load_before, "load_after": load(),
    }


def row(r):
    bits = r["test_bits"] or {}
    cell = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"| {r['recipe']} | {r['corpus']} | {r['head']} | {cell(bits.get('model'))} | "
            f"{cell(bits.get('histogram'))} | {cell(bits.get('lpc'))} | {cell(r['q'])} | "
            f"{r['voiced']['model']:.2f} / {r['voiced']['held_out']:.2f} | {r['silent']['model']:.2f} | "
            f"{min(r['stable_seconds'])}-{max(r['stable_seconds'])} of {r['generated_seconds']:.0f} | "
            f"{r['train_seconds'] / 60:.1f} min, {r['epochs']} ep | {r['load_before']:.1f}/{r['load_after']:.1f} |")


HEADER = ("| recipe | corpus | head | test bits | histogram bits | LPC bits | q | voiced model / real | silent |"
          " stable s | training | load |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", default=[])
    parser.add_argument("--corpus", action="append", default=[], choices=sorted(CORPUS))
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="free-running seconds per prime")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "recipes")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "recipes.json")
    parser.add_argument("--label", default="", help="appended to each pair's key in the JSON (e.g. the --set used)")
    parser.add_argument("--table", action="store_true", help="only print the table of the pairs in --json")
    args = parser.parse_args()
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    if args.table:
        top, rule = HEADER.splitlines()
        print(f"| pair {top}\n| --- {rule}")
        for key, r in results.items():
            print(f"| {key} {row(r)}")
        return
    if not args.recipe or not args.corpus:
        parser.error("--recipe and --corpus are needed (or --table)")
    print(HEADER)
    for corpus in args.corpus:
        for recipe in args.recipe:
            r = run_pair(recipe, corpus, args.minutes, args.seconds, args.temperature, args.runs, args.sets,
                         args.label)
            r["sets"] = list(args.sets)
            # Re-read before writing: a pair takes half an hour, and rows edited or added
            # meanwhile (another arm, a fixed label) must survive this one.
            results = json.loads(args.json.read_text()) if args.json.exists() else {}
            results[f"{recipe}/{corpus}" + (f", {args.label}" if args.label else "")] = r
            args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
            print(row(r), flush=True)


if __name__ == "__main__":
    main()
