"""The benchmark suite (issue 6): one run measures, on this machine,

1. the float32 (and bfloat16) matrix-multiply rate through TensorFlow: the ceiling;
2. training throughput of the ``frame16k`` preset (frames/s, FLOP/s as a share of 1.)
   and of ``sample-phones`` (samples/s), tf.data pipeline included, plus variants
   (``hoist_input``, ``jit_compile``, both, ``mixed_bfloat16``; a ``hoist_input`` row
   also checks its outputs against the plain model with the same weights);
3. the input pipeline alone (target: >= 10x what training consumes);
4. generation: sample-level 1 and 64 streams, frame-level, each against the naive
   per-step ``model.predict`` loop measured in the same run;
5. ``mixed_bfloat16`` against float32: speed and loss after the same steps;
6. the recommended recipes (issue 14, bench_recipes.py): training throughput of
   ``speech`` and ``music`` (samples/s, FLOP share of the matmul ceiling); the speech
   recipe's time to quality on real speech (``../shared/corpora/prompts-real``: seconds
   until its validation NLL first reaches the LPC baseline minus 0.3 bits/sample);
   its generation at 1 / 16 / 64 / 256 streams (one compiled loop, one compiled call
   per frame, and at 1 stream the naive per-sample Keras loops), next to the FLOP-rate
   ceiling;

and the peak memory (max RSS) of each: every measurement runs in its own subprocess.
Writes JSON (``--json``, default docs/benchmarks.json) and the generated part of
``docs/benchmarks.md`` (between the ``bench:begin``/``bench:end`` markers; the rest of
the file is hand-written and kept). Synthetic audio (a noisy chord, with phone labels
for the sample-level corpus) is written to a temporary folder. No figure here is a
test: tests/test_bench.py only runs ``--smoke`` (tiny sizes) and checks the shape and
the correctness figures.

This file is the driver: the plan, one subprocess per measurement, the command line.
bench_data.py writes the audio (with tests/fixtures.py), bench_measure.py measures,
bench_report.py summarises and writes the markdown.

    bin/bench                      # the full suite, about 15 minutes on 2 cores
    bin/bench --smoke --json /tmp/b.json --md /tmp/b.md
    bin/bench --only matmul,generation
    bin/bench --only matmul,recipe-train,time-to-quality,recipe-generation   # issue 14's
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [p for p in (str(ROOT), str(HERE)) if p not in sys.path]

import bench_measure  # noqa: E402
import bench_recipes  # noqa: E402
from bench_measure import load, machine, peak_rss_mib  # noqa: E402
from bench_report import markdown, summarise, write_markdown  # noqa: E402

KINDS = {**bench_measure.KINDS, **bench_recipes.KINDS}
SECTIONS = ("matmul", "train", "pipeline", "generation", "precision", "recipe-train", "time-to-quality",
            "recipe-generation")
# The speech recipe's stream counts (issue 14).
RECIPE_STREAMS = (1, 16, 64, 256)


# The write-up presets' rows measure the plain LSTM unless their name says otherwise
# (hoist_input's default, auto, hoists on a CPU: the hoist_input rows are what a user
# gets there); the recipes' rows run as configured.
PLAIN = {"hoist_input": False}


def with_sets(p, **sets):
    """Measurement parameters ``p`` with more config overrides."""
    return {**p, "sets": {**p.get("sets", {}), **sets}}


def plan(smoke):
    """(section, name, kind, params) of every measurement, in run order."""
    if smoke:
        tiny_frame = {"preset": "frame16k", "data": "file", "seconds": 8, "ceiling_shape": [40, 100, 32],
                      "sets": {"window": 100, "hop": 100, "seq_len": 10, "batch_size": 4, "units": [8], **PLAIN}}
        tiny_sample = {"preset": "sample-phones", "data": "folder", "utterances": 6, "seconds": 0.5,
                       "sets": {"seq_len": 10, "batch_size": 4, "units": [8], "window": 16, **PLAIN}}
        gen = {"streams": 4, "seconds": 5 / 16000, "naive_steps": 2, "min_seconds": 0.05}
        return [
            ("matmul", "matmul", "matmul", {"shapes": [[16, 32, 32], [64, 64, 64]],
                                            "dtypes": ["float32", "bfloat16"], "repeats": 1, "min_seconds": 0}),
            ("train", "frame16k", "train", {**tiny_frame, "warm": 1, "timed": 2, "forward": True}),
            ("train", "frame16k hoist_input", "train",
             {**with_sets(tiny_frame, hoist_input=True), "warm": 1, "timed": 1}),
            ("train", "frame16k hoist_input + jit_compile", "train",
             {**with_sets(tiny_frame, hoist_input=True, jit_compile="on"), "warm": 1, "timed": 1}),
            ("train", "sample-phones", "train", {**tiny_sample, "warm": 1, "timed": 2}),
            ("pipeline", "frame16k", "pipeline", {**tiny_frame, "warm": 1, "timed": 2}),
            ("pipeline", "sample-phones", "pipeline", {**tiny_sample, "warm": 1, "timed": 2}),
            ("generation", "sample-level", "generation",
             {**gen, "units": [8, 8], "window": 16, "hop": 1}),
            ("generation", "frame-level", "generation", {**gen, "units": [8], "window": 100, "hop": 100}),
            ("precision", "bf16 vs f32", "precision", {**tiny_frame, "warm": 1, "timed": 2}),
            *recipe_plan(smoke=True),
        ]
    frame = {"preset": "frame16k", "data": "file", "seconds": 20 * 60, "ceiling_shape": [800, 16000, 2400],
             "sets": PLAIN}
    sample = {"preset": "sample-phones", "data": "folder", "utterances": 40, "seconds": 2.0, "sets": PLAIN}
    return [
        ("matmul", "matmul", "matmul", {
            # frame16k's and the sample-level model's shapes, then the recipes' predictor
            # layer in training (32 x 32 x 16 rows) and in generation (256 and 1 streams).
            "shapes": [[2048, 2048, 2048], [800, 16000, 2400], [16, 16000, 2400], [64, 192, 512], [1, 192, 512],
                       [16384, 256, 256], [256, 256, 256], [1, 256, 256]],
            "dtypes": ["float32", "bfloat16"], "repeats": 5, "min_seconds": 0.3}),
        ("train", "frame16k", "train", {**frame, "warm": 3, "timed": 5, "forward": True}),
        ("train", "frame16k hoist_input", "train", {**with_sets(frame, hoist_input=True), "warm": 2, "timed": 5}),
        ("train", "frame16k jit_compile", "train", {**with_sets(frame, jit_compile="on"), "warm": 2, "timed": 5}),
        ("train", "frame16k hoist_input + jit_compile", "train",
         {**with_sets(frame, hoist_input=True, jit_compile="on"), "warm": 2, "timed": 5}),
        ("train", "frame16k mixed_bfloat16", "train",
         {**with_sets(frame, mixed_precision="mixed_bfloat16"), "warm": 2, "timed": 5}),
        ("train", "sample-phones", "train", {**sample, "warm": 5, "timed": 30}),
        ("pipeline", "frame16k", "pipeline", {**frame, "warm": 2, "timed": 10}),
        ("pipeline", "sample-phones", "pipeline", {**sample, "warm": 10, "timed": 200}),
        ("generation", "sample-level", "generation",
         {"units": [128, 128, 128], "window": 64, "hop": 1, "streams": 64, "seconds": 2.0,
          "seconds_many": 0.25, "naive_steps": 100, "min_seconds": 0.5}),
        ("generation", "frame-level", "generation",
         {"units": [600, 600, 600], "window": 16000, "hop": 16000, "streams": 64, "seconds": 4.0,
          "naive_steps": 5}),
        ("precision", "bf16 vs f32", "precision", {
            "preset": "frame16k", "data": "file", "seconds": 120, "warm": 5, "timed": 55,
            "sets": {"window": 200, "hop": 200, "seq_len": 50, "batch_size": 16, "units": [256, 256],
                     "learning_rate": 0.01, **PLAIN}}),
        *recipe_plan(smoke=False),
    ]


# The speech recipe's optimiser settings before 2026-12-03, when its time to quality was
# halved by a higher, cosine-decayed learning rate (docs/benchmarks.md).
FORMER_SPEECH = {"learning_rate": 0.001, "lr_schedule": "constant"}
FORMER_SPEECH_NAME = "speech on prompts-real, former settings (learning_rate 0.001, constant)"
# The recipes at tiny sizes (smoke): the same layers and heads, a few units each.
TINY_RECIPE = {"units": [8], "predictor_units": [8, 8], "input_embedding": 4}


def recipe_plan(smoke):
    """Issue 14's measurements of the recommended recipes (bench_recipes.py)."""
    tiny = TINY_RECIPE if smoke else {}
    train = {"data": "file", "seconds": 4 if smoke else 300, "warm": 1 if smoke else 3, "timed": 2 if smoke else 10}
    if smoke:
        train["sets"] = {**tiny, "batch_size": 4, "seq_len": 4}
    else:
        train["ceiling_shape"] = [2048, 2048, 2048]
    rows = []
    for preset in ("speech", "music"):
        base = {**train, "preset": preset, "sets": {**train.get("sets", {})}}
        if smoke and preset == "music":
            base["sets"]["units"] = [12]
        rows.append(("recipe-train", preset, "train", base))
        if not (smoke and preset == "music"):  # smoke: the speech recipe's variant checks the maths
            rows.append(("recipe-train", f"{preset} hoist_input + jit_compile", "train",
                         with_sets(base, hoist_input=True, jit_compile="on")))
    ttq = {"preset": "speech", "corpus": "prompts-real", "gate_below_lpc": 0.3}
    if smoke:
        ttq.update(sets={**tiny, "batch_size": 4, "seq_len": 4}, check_every=2, valid_batches=2, time_limit=3,
                   baseline_samples=100_000)
    else:
        ttq.update(check_every=10, valid_batches=0, time_limit=1200, max_check_share=0.25)
    rows.append(("time-to-quality", "speech on prompts-real", "time_to_quality", ttq))
    # The baseline of "halve it", in the same run: the recipe as it was when issue 14
    # first measured its time to quality.
    rows.append(("time-to-quality", FORMER_SPEECH_NAME, "time_to_quality", with_sets(ttq, **FORMER_SPEECH)))
    for n in (1, 4) if smoke else RECIPE_STREAMS:
        gen = {"preset": "speech", "streams": n, "rounds": 1 if smoke else 2, "prime": 64 if smoke else 1024}
        if smoke:
            gen.update(sets=tiny, seconds=(8 if n == 1 else 4) * 16 / 16000, naive_steps=2, naive_call_steps=2)
        else:
            # A few seconds of audio per row (aggregate), more at one stream.
            gen.update(seconds={1: 4.0, 16: 1.0, 64: 0.5, 256: 0.25}[n], naive_steps=4, naive_call_steps=16)
            if n == 1:
                gen["ceiling_shape"] = [2048, 2048, 2048]
        if n != 1:
            gen["naive_steps"] = 0
        rows.append(("recipe-generation", f"speech, {n} stream{'s' if n > 1 else ''}", "recipe_generation", gen))
    return rows


def run_one(kind, params, inline):
    """One measurement: in a fresh subprocess (default) for its own peak RSS."""
    before = load()
    started = time.perf_counter()
    if inline:
        result = {"result": KINDS[kind](params), "peak_rss_mib": peak_rss_mib(), "rss_scope": "whole process"}
    else:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--params", json.dumps(params)],
            capture_output=True, text=True, check=False)
        line = next((l for l in proc.stdout.splitlines()[::-1] if l.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"measurement {kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(line[len("RESULT "):])
        result["rss_scope"] = "own process"
    result["wall_s"] = time.perf_counter() - started
    result["load_before"], result["load_after"] = before, load()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds; for the tests)")
    parser.add_argument("--inline", action="store_true", help="run every measurement in this process")
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--json", default=str(ROOT / "docs" / "benchmarks.json"))
    parser.add_argument("--md", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = KINDS[args.child](json.loads(args.params))
        print("RESULT " + json.dumps({"result": result, "peak_rss_mib": peak_rss_mib()}), flush=True)
        return 0
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(SECTIONS):
        parser.error(f"--only: unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}; "
                     f"choose from {', '.join(SECTIONS)}")
    report = {"machine": machine(), "smoke": args.smoke, "date": time.strftime("%Y-%m-%d %H:%M"),
              "load_start": load(), "measurements": {}}
    started = time.perf_counter()
    for section, name, kind, params in plan(args.smoke):
        if only and section not in only:
            continue
        print(f"[{time.perf_counter() - started:6.0f} s] {section}: {name} (load {load()[0]:.2f})",
              file=sys.stderr, flush=True)
        report["measurements"][f"{section}/{name}"] = {"params": params, **run_one(kind, params, args.inline)}
    report["total_s"] = time.perf_counter() - started
    report["load_end"] = load()
    summarise(report)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    write_markdown(args.md, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
