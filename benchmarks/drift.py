"""Input drift, measured: train with and without the fixes under one budget, generate
600 s free-running, report stable seconds and free-running MSE.

For each training recipe (a list of ``--set`` overrides on a shared base config) the
script trains a model on the same data with the same number of epochs, then for each
generation temperature runs ``evaluate --free-running`` (several held-out primes as
parallel streams) and collects:

- stable seconds per prime (see speechgen/drift.py): the time until per-second RMS or
  spectral flatness leaves the training audio's 1st-99th percentile range for 3 s;
- the free-running MSE at 1, 10 and 100 steps;
- the share of generated seconds inside the training range.

    python benchmarks/drift.py --data ../shared/corpora/music-real/drascula-16k.wav \\
        --out /tmp/drift --seconds 600 [--json docs/drift.json]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Frame-level: 200-sample frames (12.5 ms at 16 kHz) predicted from the previous frame.
BASE = [
    "window=200", "hop=200", "seq_len=50", "batch_size=16", "units=[256,256]",
    "learning_rate=0.002", "clipnorm=1.0", "patience=0", "output_activation=tanh",
]
# Sample-level: configs/music-sample.yaml (each sample from the 64 before it).
SAMPLE_BASE = ["--config", str(Path(__file__).resolve().parents[1] / "configs" / "music-sample.yaml"), "--set", "patience=0", "--set", "phones=none"]
_SS_NOISE = [
    "scheduled_sampling=0.5", "sampling_schedule=inverse_sigmoid", "schedule_epochs=8",
    "input_noise=0.05", "input_noise_end=0.02",
]
RECIPES = {
    "teacher forcing (baseline)": [],
    "input noise + dropout": ["input_noise=0.05", "input_noise_end=0.02", "input_dropout=0.1", "schedule_epochs=8"],
    "scheduled sampling": ["scheduled_sampling=0.5", "sampling_schedule=inverse_sigmoid", "schedule_epochs=8"],
    "scheduled sampling + noise": _SS_NOISE,
    "sample-level: teacher forcing": ["@sample"],
    # Noise scaled to sample-level inputs (music's normalised RMS is about 0.05).
    "sample-level: scheduled sampling + noise": [
        "@sample", "scheduled_sampling=0.5", "sampling_schedule=inverse_sigmoid", "schedule_epochs=8",
        "input_noise=0.01", "input_noise_end=0.005",
    ],
}


def train_args(recipe, epochs):
    """``speechgen train`` options for a recipe: its base, the epoch budget, its sets."""
    sets = RECIPES[recipe]
    if sets[:1] == ["@sample"]:
        return [*SAMPLE_BASE, *[x for s in [f"epochs={epochs}", *sets[1:]] for x in ("--set", s)]]
    return [x for s in [*BASE, f"epochs={epochs}", *sets] for x in ("--set", s)]


def speechgen(*args):
    cmd = [sys.executable, "-m", "speechgen.cli", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="folder for the runs")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--primes", type=int, default=4)
    parser.add_argument("--temperatures", default="0,0.5,1")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names")
    parser.add_argument("--json", help="write the results here; recipes already in the file are kept "
                        "unless run again (the same data, epochs and seconds only)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"data": args.data, "epochs": args.epochs, "seconds": args.seconds, "base": BASE,
               "sample_base": SAMPLE_BASE, "recipes": {}}
    if args.json and Path(args.json).exists():
        earlier = json.loads(Path(args.json).read_text())
        if all(earlier.get(k) == results[k] for k in ("data", "epochs", "seconds")):
            results["recipes"] = earlier.get("recipes", {})
    for name in args.recipes.split(","):
        run = out / name.replace(" ", "_").replace("+", "and").replace("(", "").replace(")", "").replace(":", "")
        if not (run / "model.keras").exists():
            speechgen("train", args.data, "--out", run, "--quiet", "--force", *train_args(name, args.epochs))
        train_s = json.loads((run / "summary.json").read_text())["seconds_total"]
        summary = json.loads((run / "summary.json").read_text())
        entry = {"sets": RECIPES[name], "train_seconds": train_s, "test_mse": summary["splits_mse"]["test"]["model"],
                 "test_zero_mse": summary["splits_mse"]["test"]["zero"], "generation": {}}
        for t in [float(v) for v in args.temperatures.split(",")]:
            report = json.loads(speechgen(
                "evaluate", run / "model.keras", "--free-running", "--seconds", args.seconds,
                # These recipes are MSE models: their noise level is --noise (it was
                # spelled --temperature before categorical heads had a real one).
                "--primes", args.primes, *(["--noise", t] if t else []), "--json", "--plot", run / f"drift-t{t:g}.png",
            ))
            ranges = report["ranges"]
            inside = [
                sum(ranges["rms"][0] <= r <= ranges["rms"][1] and ranges["flatness"][0] <= f <= ranges["flatness"][1]
                    for r, f in zip(feat["rms"], feat["flatness"])) / max(1, len(feat["rms"]))
                for feat in report["features"]
            ]
            entry["generation"][f"{t:g}"] = {
                "stable_seconds": report["stable_seconds"],
                "inside_share": inside,
                "horizons": report["horizons"],
                "typical": report["typical"],
            }
            print(f"{name:32s} T={t:<4g} stable {report['stable_seconds']} inside "
                  f"{[round(v, 2) for v in inside]} MSE {report['horizons']}", flush=True)
        results["recipes"][name] = entry
        if args.json:  # after every recipe: a long benchmark keeps what it has measured
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
