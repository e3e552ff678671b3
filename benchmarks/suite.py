"""The benchmark suite (issue 6): one run measures, on this machine,

1. the float32 (and bfloat16) matrix-multiply rate through TensorFlow: the ceiling;
2. training throughput of the ``frame16k`` preset (frames/s, FLOP/s as a share of 1.)
   and of ``sample-phones`` (samples/s), tf.data pipeline included, plus variants
   (``jit_compile=True``, ``mixed_bfloat16``, the hoisted-input prototype);
3. the input pipeline alone (target: >= 10x what training consumes);
4. generation: sample-level 1 and 64 streams, frame-level, each against the naive
   per-step ``model.predict`` loop measured in the same run, plus the prototypes of
   benchmarks/prototypes.py (fused and bfloat16 cell loops) with their error;
5. ``mixed_bfloat16`` against float32: speed and loss after the same steps;

and the peak memory (max RSS) of each: every measurement runs in its own subprocess.
Writes JSON (``--json``, default docs/benchmarks.json) and the generated part of
``docs/benchmarks.md`` (between the ``bench:begin``/``bench:end`` markers; the rest of
the file is hand-written and kept). Synthetic audio (a noisy chord, with phone labels
for the sample-level corpus) is written to a temporary folder. No figure here is a
test: tests/test_bench.py only runs ``--smoke`` (tiny sizes) and checks the shape.

    bin/bench                      # the full suite, a few minutes on 2 cores
    bin/bench --smoke --json /tmp/b.json --md /tmp/b.md
    bin/bench --only matmul,generation
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
RATE = 16000

# Targets of issue 6.
TARGETS = {
    "frame16k_train_share": 0.85,
    "gen_rtf_1": 4.0,
    "gen_rtf_64": 100.0,
    "pipeline_ratio": 10.0,
}
# mixed_bfloat16 must end within this relative distance of float32's loss.
BF16_LOSS_TOLERANCE = 0.01
# bfloat16 generation prototype: one-step output error allowed against float32.
BF16_GEN_TOLERANCE = 2e-2


# ----------------------------------------------------------------------------- helpers

def lstm_flops(window, hop, units, extra_inputs=0):
    """Forward FLOPs of one model step (multiply-adds count 2):
    ``sum_l 2 * (in_l + units_l) * 4 * units_l + 2 * units_last * hop``."""
    total, inputs = 0, window + extra_inputs
    for u in units:
        total += 2 * (inputs + u) * 4 * u
        inputs = u
    return total + 2 * inputs * hop


def machine():
    import keras
    import tensorflow as tf

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0))}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = set(next(l for l in text.splitlines() if l.startswith("flags")).split(":", 1)[1].split())
        info["simd"] = sorted(f for f in flags if f.startswith(("avx512f", "avx512_bf16", "amx", "avx2", "fma")))
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return info


def load():
    return [round(x, 2) for x in os.getloadavg()]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(fn, repeats=3, min_seconds=0.0):
    """Best seconds per call of ``fn`` over ``repeats`` (after one warm-up call)."""
    from generation import timed

    fn()
    return min(timed(fn, min_seconds, warmup=False) for _ in range(repeats))


def write_wav(path, seconds, seed=0, rate=RATE):
    """A noisy three-note chord with a slow vibrato, 16-bit PCM."""
    from scipy.io import wavfile

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.empty(n, np.int16)
    block = rate * 60
    for a in range(0, n, block):
        t = np.arange(a, min(n, a + block)) / rate
        wobble = 1 + 0.01 * np.sin(2 * np.pi * 0.3 * t)
        x = sum(amp * np.sin(2 * np.pi * f * wobble * t + p)
                for amp, f, p in ((0.3, 220.0, 0), (0.25, 330.0, 1), (0.2, 550.0, 2)))
        x += rng.normal(scale=0.02, size=t.size)
        out[a: a + t.size] = np.round(np.clip(x, -1, 1) * 32767)
    wavfile.write(path, rate, out)
    return path


PHONES = ("h#", "aa", "iy", "s", "m", "t", "eh", "n")


def write_phone_folder(folder, n_utts, seconds, seed=0, rate=RATE):
    """Utterances with .PHN labels: segments of 40-120 ms cycling through PHONES."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for u in range(n_utts):
        wav = write_wav(folder / f"u{u:03d}.wav", seconds, seed + u, rate)
        n, pos, lines = int(seconds * rate), 0, []
        while pos < n:
            end = min(n, pos + int(rng.integers(640, 1920)))
            lines.append(f"{pos} {end} {PHONES[int(rng.integers(len(PHONES)))]}")
            pos = end
        wav.with_suffix(".PHN").write_text("\n".join(lines) + "\n")
    return folder


# ------------------------------------------------------------------- the measurements

def bench_matmul(p):
    """tf.matmul rates (GFLOP/s), best of a few, for the model's shapes and a square."""
    import tensorflow as tf

    rows = []
    for m, k, n in p["shapes"]:
        for dtype in p["dtypes"]:
            a = tf.random.normal((m, k), dtype=tf.float32)
            b = tf.random.normal((k, n), dtype=tf.float32)
            a, b = tf.cast(a, dtype), tf.cast(b, dtype)
            fn = tf.function(lambda: tf.matmul(a, b))
            s = best_time(lambda: fn().numpy(), p["repeats"], p["min_seconds"])
            rows.append({"m": m, "k": k, "n": n, "dtype": dtype, "seconds": s,
                         "gflops": 2 * m * k * n / s / 1e9})
    f32 = [r["gflops"] for r in rows if r["dtype"] == "float32"]
    bf16 = [r["gflops"] for r in rows if r["dtype"] == "bfloat16"]
    return {"rows": rows, "ceiling_gflops_f32": max(f32), "ceiling_gflops_bf16": max(bf16) if bf16 else None}


class _StepClock:
    """A Keras callback recording when each training batch ends."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ends, self.losses = [], []

            def on_train_begin(self, logs=None):
                self.begin = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.losses.append(float(logs["loss"]))
                self.ends.append(time.perf_counter())

        return Clock()


def _data_and_config(p, tmp):
    from speechgen.config import load_config
    from speechgen.data.corpus import Normaliser, load_corpus
    from speechgen.train import _phones_for
    from speechgen.data.pipeline import split_batches

    config = load_config([p["preset"]], [f"{k}={json.dumps(v)}" for k, v in p.get("sets", {}).items()])
    if p["data"] == "file":
        data = write_wav(Path(tmp) / "audio.wav", p["seconds"])
    else:
        data = write_phone_folder(Path(tmp) / "corpus", p["utterances"], p["seconds"])
    corpus = load_corpus(data, config.split, config.seed)
    normaliser = Normaliser.fit(config.normalisation, corpus.splits["train"])
    phones = _phones_for(config, corpus)
    ds, schedule = split_batches(corpus, "train", normaliser, (config.window, config.hop, config.seq_len),
                                 config.batch_size, phones)
    return config, corpus, normaliser, phones, data, ds, schedule


def bench_train(p):
    """Train steps through ``model.fit`` on the tf.data pipeline (repeated)."""
    import keras

    from speechgen.training.callbacks import ResetStates
    from speechgen.model import build_model
    from speechgen.training.optimizer import make_optimizer

    here = None
    if p.get("ceiling_shape"):
        # The matmul ceiling again, in this process just before training: the CPU is
        # shared, so a ceiling taken minutes earlier may be under another load.
        here = bench_matmul({"shapes": [p["ceiling_shape"]], "dtypes": ["float32"], "repeats": 3,
                             "min_seconds": 0.2})["ceiling_gflops_f32"]
    with tempfile.TemporaryDirectory() as tmp:
        config, corpus, normaliser, phones, data, ds, schedule = _data_and_config(p, tmp)
        variant = p.get("variant", "default")
        check = None
        if variant.startswith("hoisted"):
            from prototypes import hoisted_model

            keras.utils.set_random_seed(config.seed)
            model = hoisted_model(config.window, config.hop, config.units, config.batch_size,
                                  config.output_activation)
            rnns = [l for l in model.layers if isinstance(l, keras.layers.RNN)]
            model.reset_rnn_states = lambda: [l.reset_state() for l in rnns]
            # Correctness: the same outputs as the SpeechRNN with the same weights.
            from prototypes import copy_weights_to_hoisted, max_abs_diff

            reference = build_model(config, corpus.rate, normaliser, data)
            copy_weights_to_hoisted(reference, model)
            x = next(iter(ds))[0]
            check = max_abs_diff(model.predict_on_batch(x), reference.predict_on_batch(x))
            model.reset_rnn_states()
            del reference
        else:
            model = build_model(config, corpus.rate, normaliser, data,
                                phones=phones[0].to_list() if phones else None)
        model.compile(optimizer=make_optimizer(config), loss="mse", jit_compile=variant.endswith("jit"))
        clock = _StepClock()
        warm, timed = p["warm"], p["timed"]
        model.fit(ds.repeat(), steps_per_epoch=warm + timed, epochs=1, shuffle=False, verbose=0,
                  callbacks=[ResetStates(schedule.fresh), clock])
        # Median of the timed steps: on a shared CPU one step slowed by another job's
        # burst should not move the figure; the mean and the fastest are kept too.
        steps = np.diff(clock.ends[warm - 1:])
        step = float(np.median(steps))
        per_batch = config.batch_size * config.seq_len
        out = {
            "variant": variant, "mixed_precision": config.mixed_precision, "window": config.window,
            "hop": config.hop, "units": config.units, "batch_size": config.batch_size,
            "seq_len": config.seq_len, "warm_steps": warm, "timed_steps": timed,
            "first_step_s": clock.ends[0] - clock.begin, "step_s": step, "step_times_s": steps.tolist(),
            "step_mean_s": float(steps.mean()), "step_min_s": float(steps.min()),
            "steps_per_s": per_batch / step, "samples_per_s": per_batch * config.hop / step,
            "losses": clock.losses, "final_loss": clock.losses[-1], "max_abs_diff_vs_speechrnn": check,
            "data": "one WAV file, phones=none" if p["data"] == "file" else
                    f"folder of {p['utterances']} x {p['seconds']} s utterances with .PHN",
        }
        fwd = lstm_flops(config.window, config.hop, config.units,
                         len(phones[0]) * phones[2] if phones else 0)
        out["flops_per_step_forward"] = fwd
        out["flops_per_step_train"] = 3 * fwd
        out["achieved_gflops"] = 3 * fwd * per_batch / step / 1e9
        out["matmul_gflops_here"] = here
        if p.get("forward"):
            # Forward pass alone on one batch (no gradients, no optimizer): where the time goes.
            import tensorflow as tf

            x = next(iter(ds))[0]
            forward = tf.function(lambda x: model(x, training=False))
            call = lambda: forward(x).numpy()  # noqa: E731
            out["forward_s"] = best_time(call, 1)
        return out


def bench_pipeline(p):
    """Iterate the training tf.data pipeline alone (no model)."""
    with tempfile.TemporaryDirectory() as tmp:
        config, _, _, _, _, ds, schedule = _data_and_config(p, tmp)
        it = iter(ds.repeat())
        for _ in range(p["warm"]):
            next(it)
        started = time.perf_counter()
        for _ in range(p["timed"]):
            batch = next(it)
        seconds = (time.perf_counter() - started) / p["timed"]
        del batch
        per_batch = config.batch_size * config.seq_len
        return {"batch_s": seconds, "steps_per_s": per_batch / seconds,
                "samples_per_s": per_batch * config.hop / seconds,
                "batches_in_schedule": schedule.n_batches}


def bench_generation(p):
    """Naive per-step predict, model(x) per step, the compiled loop (1 and N streams),
    and the prototypes (fused float32, bfloat16) with their error against it."""
    from generation import bench, timed

    from prototypes import Bf16Generator, FusedGenerator, max_abs_diff
    from speechgen.generate import Generator
    from speechgen.model import SpeechRNN

    units, window, hop = p["units"], p["window"], p["hop"]
    min_s = p.get("min_seconds", 1.0)
    many_s = p.get("seconds_many", p["seconds"])
    rows = bench(units, window, hop, RATE, p["streams"], p["seconds"], p["naive_steps"], min_s, many_s)
    out = {"units": units, "window": window, "hop": hop, "rate": RATE,
           "flops_per_sample": lstm_flops(window, hop, units) / hop, "rows": rows}
    if not p.get("prototypes"):
        return out
    import keras

    keras.utils.set_random_seed(1)
    model = SpeechRNN(window=window, hop=hop, units=units, batch_size=1, sample_rate=RATE)
    prime = np.random.default_rng(0).normal(scale=0.1, size=(1, 4 * window)).astype(np.float32)
    naive = rows[0]["samples_per_s"]
    check_steps = p["check_steps"]
    rounds = p.get("rounds", 3)
    for n in (1, p["streams"]):
        steps = max(1, int((p["seconds"] if n == 1 else many_s) * RATE / hop))
        prime_n = np.repeat(prime, n, axis=0)
        ref = Generator(model, streams=n)
        w, _ = ref.prime(prime_n)
        reference_1 = ref.free_run(w, 1, chunk_steps=1)
        reference = ref.free_run(w, check_steps, chunk_steps=check_steps)
        gens = {"compiled": (ref, w)}
        for name, cls in (("fused float32 (prototype)", FusedGenerator),
                          ("bfloat16 weights (prototype)", Bf16Generator)):
            gen = cls(model, streams=n)
            gens[name] = (gen, gen.prime(prime_n)[0])
        # Round robin, best of `rounds`: the CPU is shared, so A/B figures are taken
        # alternately rather than one after the other.
        best = {name: float("inf") for name in gens}
        for _ in range(rounds):
            for name, (gen, w2) in gens.items():
                best[name] = min(best[name], timed(lambda: gen.free_run(w2, steps, chunk_steps=steps), min_s))
        for name, (gen, w2) in gens.items():
            samples = n * steps * hop / best[name]
            if name == "compiled":
                row = next(r for r in rows if r["method"].startswith("compiled") and r["streams"] == n)
                row["samples_per_s_first_pass"] = row["samples_per_s"]
                row.update(samples_per_s=max(samples, row["samples_per_s"]),
                           real_time_factor=max(samples, row["samples_per_s"]) / RATE)
                row["vs_naive"] = row["samples_per_s"] / naive
                continue
            rows.append({
                "method": name, "streams": n, "samples_per_s": samples,
                "real_time_factor": samples / RATE, "vs_naive": samples / naive,
                "max_abs_diff_1_step": max_abs_diff(gen.free_run(w2, 1, chunk_steps=1), reference_1),
                f"max_abs_diff_{check_steps}_steps": max_abs_diff(
                    gen.free_run(w2, check_steps, chunk_steps=check_steps), reference),
            })
    return out


def bench_precision(p):
    """The same tiny-ish frame model, data, seed and steps in float32 and mixed_bfloat16."""
    out = {}
    for mp in ("none", "mixed_bfloat16"):
        q = dict(p, sets={**p["sets"], "mixed_precision": mp})
        out[mp] = bench_train(q)
    f32, bf16 = out["none"], out["mixed_bfloat16"]
    out["speedup_bf16"] = f32["step_s"] / bf16["step_s"]
    out["loss_rel_diff"] = abs(bf16["final_loss"] - f32["final_loss"]) / f32["final_loss"]
    out["loss_drop_f32"] = f32["losses"][0] - f32["final_loss"]
    out["loss_drop_bf16"] = bf16["losses"][0] - bf16["final_loss"]
    out["tolerance"] = BF16_LOSS_TOLERANCE
    out["within_tolerance"] = out["loss_rel_diff"] <= BF16_LOSS_TOLERANCE
    return out


KINDS = {"matmul": bench_matmul, "train": bench_train, "pipeline": bench_pipeline,
         "generation": bench_generation, "precision": bench_precision}


# ----------------------------------------------------------------------------- the plan

def plan(smoke):
    """(section, name, kind, params) of every measurement, in run order."""
    if smoke:
        tiny_frame = {"preset": "frame16k", "data": "file", "seconds": 8, "ceiling_shape": [40, 100, 32],
                      "sets": {"window": 100, "hop": 100, "seq_len": 10, "batch_size": 4, "units": [8]}}
        tiny_sample = {"preset": "sample-phones", "data": "folder", "utterances": 6, "seconds": 0.5,
                       "sets": {"seq_len": 10, "batch_size": 4, "units": [8], "window": 16}}
        # check_steps = the timed steps (5 / 16 kHz), so each generator compiles one loop less.
        gen = {"streams": 4, "seconds": 5 / 16000, "naive_steps": 2, "min_seconds": 0.05}
        return [
            ("matmul", "matmul", "matmul", {"shapes": [[16, 32, 32], [64, 64, 64]],
                                            "dtypes": ["float32", "bfloat16"], "repeats": 1, "min_seconds": 0}),
            ("train", "frame16k", "train", {**tiny_frame, "warm": 1, "timed": 2, "forward": True}),
            ("train", "frame16k hoisted input (prototype)", "train",
             {**tiny_frame, "warm": 1, "timed": 1, "variant": "hoisted"}),
            ("train", "frame16k hoisted input + jit_compile (prototype)", "train",
             {**tiny_frame, "warm": 1, "timed": 1, "variant": "hoisted-jit"}),
            ("train", "sample-phones", "train", {**tiny_sample, "warm": 1, "timed": 2}),
            ("pipeline", "frame16k", "pipeline", {**tiny_frame, "warm": 1, "timed": 2}),
            ("pipeline", "sample-phones", "pipeline", {**tiny_sample, "warm": 1, "timed": 2}),
            ("generation", "sample-level", "generation",
             {**gen, "units": [8, 8], "window": 16, "hop": 1, "prototypes": True, "check_steps": 5, "rounds": 1}),
            ("generation", "frame-level", "generation", {**gen, "units": [8], "window": 100, "hop": 100}),
            ("precision", "bf16 vs f32", "precision", {**tiny_frame, "warm": 1, "timed": 2}),
        ]
    frame = {"preset": "frame16k", "data": "file", "seconds": 20 * 60, "ceiling_shape": [800, 16000, 2400]}
    sample = {"preset": "sample-phones", "data": "folder", "utterances": 40, "seconds": 2.0}
    return [
        ("matmul", "matmul", "matmul", {
            "shapes": [[2048, 2048, 2048], [800, 16000, 2400], [16, 16000, 2400], [64, 192, 512], [1, 192, 512]],
            "dtypes": ["float32", "bfloat16"], "repeats": 5, "min_seconds": 0.3}),
        ("train", "frame16k", "train", {**frame, "warm": 3, "timed": 5, "forward": True}),
        ("train", "frame16k hoisted input (prototype)", "train",
         {**frame, "warm": 2, "timed": 5, "variant": "hoisted"}),
        ("train", "frame16k jit_compile", "train", {**frame, "warm": 2, "timed": 5, "variant": "jit"}),
        ("train", "frame16k hoisted input + jit_compile (prototype)", "train",
         {**frame, "warm": 2, "timed": 5, "variant": "hoisted-jit"}),
        ("train", "frame16k mixed_bfloat16", "train",
         {**frame, "warm": 2, "timed": 5, "sets": {"mixed_precision": "mixed_bfloat16"}}),
        ("train", "sample-phones", "train", {**sample, "warm": 5, "timed": 30}),
        ("pipeline", "frame16k", "pipeline", {**frame, "warm": 2, "timed": 10}),
        ("pipeline", "sample-phones", "pipeline", {**sample, "warm": 10, "timed": 200}),
        ("generation", "sample-level", "generation",
         {"units": [128, 128, 128], "window": 64, "hop": 1, "streams": 64, "seconds": 2.0,
          "seconds_many": 0.25, "naive_steps": 100, "prototypes": True, "check_steps": 200, "rounds": 3,
          "min_seconds": 0.5}),
        ("generation", "frame-level", "generation",
         {"units": [600, 600, 600], "window": 16000, "hop": 16000, "streams": 64, "seconds": 4.0,
          "naive_steps": 5}),
        ("precision", "bf16 vs f32", "precision", {
            "preset": "frame16k", "data": "file", "seconds": 120, "warm": 5, "timed": 55,
            "sets": {"window": 200, "hop": 200, "seq_len": 50, "batch_size": 16, "units": [256, 256],
                     "learning_rate": 0.01}}),
    ]


def run_one(kind, params, inline):
    """One measurement: in a fresh subprocess (default) for its own peak RSS."""
    before = load()
    started = time.perf_counter()
    if inline:
        result = {"result": KINDS[kind](params), "peak_rss_mib": peak_rss_mib(), "rss_scope": "whole process"}
    else:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--params", json.dumps(params)],
            capture_output=True, text=True)
        line = next((l for l in proc.stdout.splitlines()[::-1] if l.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"measurement {kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(line[len("RESULT "):])
        result["rss_scope"] = "own process"
    result["wall_s"] = time.perf_counter() - started
    result["load_before"], result["load_after"] = before, load()
    return result


# ----------------------------------------------------------------------- summarising

def summarise(report):
    """Targets: measured vs target, PASS/MISS, gap."""
    m = report["measurements"]
    targets = []

    def get(section, name):
        return m.get(f"{section}/{name}", {}).get("result")

    mm = get("matmul", "matmul")
    f16 = get("train", "frame16k")
    if mm:
        # The ceiling: the best float32 rate seen in this run (section 1, or re-measured
        # beside each frame16k training measurement).
        here = [v["result"].get("matmul_gflops_here") or 0 for k, v in m.items() if k.startswith("train/")]
        report["ceiling_gflops_f32"] = max([mm["ceiling_gflops_f32"], *here])
    if mm and f16:
        ceiling = report["ceiling_gflops_f32"]
        share = f16["achieved_gflops"] / ceiling
        best = max((r for k, v in m.items() if k.startswith("train/frame16k") for r in [v["result"]]),
                   key=lambda r: r["achieved_gflops"])
        targets.append({"target": "frame16k training FLOP/s share of the float32 matmul rate",
                        "measured": share, "want": TARGETS["frame16k_train_share"], "unit": "share",
                        "note": f"best variant: {best['variant']} {best['mixed_precision']} "
                                f"{best['achieved_gflops'] / ceiling:.0%}"})
    gen = get("generation", "sample-level")
    if gen:
        compiled = [r for r in gen["rows"] if r["method"].startswith("compiled")]
        one = next(r for r in compiled if r["streams"] == 1)
        many = max(compiled, key=lambda r: r["streams"])
        best1 = max((r for r in gen["rows"] if r["streams"] == 1), key=lambda r: r["real_time_factor"])
        bestn = max((r for r in gen["rows"] if r["streams"] == many["streams"]),
                    key=lambda r: r["real_time_factor"])
        targets.append({"target": "sample-level generation, 1 stream, real-time factor (3 x 128, k = 64)",
                        "measured": one["real_time_factor"], "want": TARGETS["gen_rtf_1"], "unit": "x",
                        "note": f"best: {best1['method']} {best1['real_time_factor']:.2f}x"})
        targets.append({"target": f"sample-level generation, {many['streams']} streams, aggregate real-time factor",
                        "measured": many["real_time_factor"], "want": TARGETS["gen_rtf_64"], "unit": "x",
                        "note": f"best: {bestn['method']} {bestn['real_time_factor']:.1f}x"})
        if mm:
            cap = report["ceiling_gflops_f32"] * 1e9 / gen["flops_per_sample"] / gen["rate"]
            report["generation_ceiling_rtf"] = cap
    for preset in ("frame16k", "sample-phones"):
        tr, pl = get("train", preset), get("pipeline", preset)
        if tr and pl:
            targets.append({"target": f"{preset} input pipeline alone / training consumption",
                            "measured": pl["samples_per_s"] / tr["samples_per_s"],
                            "want": TARGETS["pipeline_ratio"], "unit": "x", "note": ""})
    pr = get("precision", "bf16 vs f32")
    if pr:
        targets.append({"target": "mixed_bfloat16 final loss vs float32 (relative difference, at most)",
                        "measured": pr["loss_rel_diff"], "want": pr["tolerance"], "unit": "rel", "at_most": True,
                        "note": f"bf16 speed x{pr['speedup_bf16']:.2f} of float32"})
    for t in targets:
        if t.get("at_most"):
            t["pass"] = t["measured"] <= t["want"]
            t["gap"] = 0.0 if t["pass"] else t["measured"] - t["want"]
        else:
            t["pass"] = t["measured"] >= t["want"]
            t["gap"] = 0.0 if t["pass"] else t["want"] / t["measured"]
    report["targets"] = targets


def _fmt(x, unit):
    if unit == "share":
        return f"{x:.0%}"
    if unit == "rel":
        return f"{x:.3f}"
    return f"{x:,.2f}x" if x < 100 else f"{x:,.0f}x"


def markdown(report):
    m, mach = report["measurements"], report["machine"]
    ceiling = report.get("ceiling_gflops_f32")
    out = [f"Generated by `bin/bench`{' --smoke' if report['smoke'] else ''} on {report['date']} "
           f"in {report['total_s']:.0f} s. Machine: {mach.get('cpu', '?')}, {mach['cpus_usable']} usable CPUs "
           f"({', '.join(mach.get('simd', []))}), {mach.get('memory_gib', '?')} GiB, "
           f"TensorFlow {mach['tensorflow']}, Keras {mach['keras']}, Python {mach['python']}. "
           f"Load average (1, 5, 15 min) at the start {report['load_start']}, at the end {report['load_end']}; "
           "each row gives the 1-minute load before and after its measurement (the CPU is shared, "
           "so figures taken under load are low bounds).", ""]
    out += ["### Targets", "", "| target | measured | wanted | result | gap | note |",
            "| --- | --- | --- | --- | --- | --- |"]
    for t in report["targets"]:
        want = ("<= " if t.get("at_most") else ">= ") + _fmt(t["want"], t["unit"])
        gap = "" if t["pass"] else (f"+{t['gap']:.3f}" if t.get("at_most") else f"{t['gap']:.1f}x short")
        out.append(f"| {t['target']} | {_fmt(t['measured'], t['unit'])} | {want} | "
                   f"{'PASS' if t['pass'] else '**MISS**'} | {gap} | {t['note']} |")
    if "generation_ceiling_rtf" in report:
        out += ["", f"Matmul-rate ceiling for sample-level generation: float32 ceiling / FLOPs per sample / "
                f"16 kHz = **{report['generation_ceiling_rtf']:.1f}x** real time in aggregate, however many "
                "streams (the 100x target needs that many times 16,000 x FLOPs-per-sample FLOP/s)."]

    def loads(r):
        return f"{r['load_before'][0]:.2f} / {r['load_after'][0]:.2f}"

    if "matmul/matmul" in m:
        r = m["matmul/matmul"]
        out += ["", "### 1. Matrix multiply (tf.matmul, best of 5 in the full run)", "",
                "| m x k x n | dtype | GFLOP/s |", "| --- | --- | --- |"]
        for row in r["result"]["rows"]:
            out.append(f"| {row['m']} x {row['k']} x {row['n']} | {row['dtype']} | {row['gflops']:,.1f} |")
        out.append(f"\nBest float32 here: {r['result']['ceiling_gflops_f32']:,.1f} GFLOP/s; ceiling used for the "
                   f"shares (best float32 seen in this run, also re-measured beside each frame16k training "
                   f"measurement): **{ceiling:,.1f} GFLOP/s**; "
                   f"peak RSS {r['peak_rss_mib']:,.0f} MiB; load {loads(r)}.")
    trains = [(k.split("/", 1)[1], v) for k, v in m.items() if k.startswith("train/")]
    if trains:
        out += ["", "### 2. Training throughput (model.fit on the tf.data pipeline)", "",
                "| preset / variant | step (s), median (min-max) | model steps/s | samples/s | GFLOP/s | share of matmul ceiling "
                "| matmul GFLOP/s just before "
                "| first step (s) | final loss | peak RSS (MiB) | load before / after |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in trains:
            r = v["result"]
            share = f"{r['achieved_gflops'] / ceiling:.0%}" if ceiling else ""
            out.append(f"| {name} | {r['step_s']:.3f} ({min(r['step_times_s']):.3f}-{max(r['step_times_s']):.3f}) | "
                       f"{r['steps_per_s']:,.0f} | {r['samples_per_s']:,.0f} | "
                       f"{r['achieved_gflops']:,.1f} | {share} | {format(r['matmul_gflops_here'], ',.0f') if r.get('matmul_gflops_here') else '-'} | "
                       f"{r['first_step_s']:.1f} | {r['final_loss']:.4g} | "
                       f"{v['peak_rss_mib']:,.0f} | {loads(v)} |")
        f16 = m.get("train/frame16k", {}).get("result")
        if f16:
            out.append(f"\nframe16k: {f16['timed_steps']} timed steps after {f16['warm_steps']} warm-up steps, "
                       f"batch {f16['batch_size']} x {f16['seq_len']} frames; "
                       f"{f16['flops_per_step_forward'] / 1e6:,.1f} MFLOP forward per frame, x3 for training."
                       + (f" Forward pass alone on one batch: {f16['forward_s']:.2f} s "
                          f"({f16['forward_s'] / f16['step_s']:.0%} of a training step)." if "forward_s" in f16 else ""))
        for name, v in trains:
            if v["result"].get("max_abs_diff_vs_speechrnn") is not None:
                out.append(f"\n{name}: outputs against the SpeechRNN with the same weights, max abs diff "
                           f"{v['result']['max_abs_diff_vs_speechrnn']:.1e} (one batch, float32).")
    pipes = [(k.split("/", 1)[1], v) for k, v in m.items() if k.startswith("pipeline/")]
    if pipes:
        out += ["", "### 3. Input pipeline alone", "",
                "| preset | batch (s) | model steps/s | samples/s | vs training | peak RSS (MiB) | load before / after |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in pipes:
            r = v["result"]
            tr = m.get(f"train/{name}", {}).get("result")
            ratio = f"{r['samples_per_s'] / tr['samples_per_s']:,.0f}x" if tr else ""
            out.append(f"| {name} | {r['batch_s']:.4f} | {r['steps_per_s']:,.0f} | {r['samples_per_s']:,.0f} | "
                       f"{ratio} | {v['peak_rss_mib']:,.0f} | {loads(v)} |")
    gens = [(k.split("/", 1)[1], v) for k, v in m.items() if k.startswith("generation/")]
    if gens:
        out += ["", "### 4. Generation (random weights; speed does not depend on them)", "",
                "| model | method | streams | samples/s | real-time factor | vs naive | max abs diff vs compiled "
                "(1 step / many) | peak RSS (MiB) | load before / after |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in gens:
            r = v["result"]
            rss = f"{v['peak_rss_mib']:,.0f}"
            label = f"{name}: {len(r['units'])} x {r['units'][0]} LSTM, window {r['window']}, hop {r['hop']}"
            for i, row in enumerate(r["rows"]):
                diff = ""
                if "max_abs_diff_1_step" in row:
                    many = next(val for key, val in row.items() if key.startswith("max_abs_diff_") and key != "max_abs_diff_1_step")
                    diff = f"{row['max_abs_diff_1_step']:.1e} / {many:.1e}"
                out.append(f"| {label if i == 0 else ''} | {row['method']} | {row['streams']} | "
                           f"{row['samples_per_s']:,.0f} | {row['real_time_factor']:,.2f}x | {row['vs_naive']:,.0f}x | "
                           f"{diff} | {rss if i == 0 else ''} | "
                           f"{loads(v) if i == 0 else ''} |")
    pr = m.get("precision/bf16 vs f32")
    if pr:
        r = pr["result"]
        f32, bf = r["none"], r["mixed_bfloat16"]
        out += ["", "### 5. mixed_bfloat16 against float32", "",
                f"Same frame model ({len(f32['units'])} x {f32['units'][0]} LSTM, window = hop = {f32['window']}, "
                f"batch {f32['batch_size']} x {f32['seq_len']}), data, seed and "
                f"{f32['warm_steps'] + f32['timed_steps']} steps in each precision.", "",
                "| precision | step (s) | samples/s | final loss |", "| --- | --- | --- | --- |",
                f"| float32 | {f32['step_s']:.4f} | {f32['samples_per_s']:,.0f} | {f32['final_loss']:.5g} |",
                f"| mixed_bfloat16 | {bf['step_s']:.4f} | {bf['samples_per_s']:,.0f} | {bf['final_loss']:.5g} |",
                "", f"Loss drop over the run: float32 {r['loss_drop_f32']:.5f}, bfloat16 {r['loss_drop_bf16']:.5f}. "
                f"bfloat16 speed: x{r['speedup_bf16']:.2f} of float32; final loss relative difference "
                f"{r['loss_rel_diff']:.3f} (tolerance {r['tolerance']}: "
                f"{'within' if r['within_tolerance'] else 'OUTSIDE'}). Peak RSS (both runs, one process) "
                f"{pr['peak_rss_mib']:,.0f} MiB; load {loads(pr)}."]
    return "\n".join(out) + "\n"


DOC_TEMPLATE = """# Benchmarks

`bin/bench` (benchmarks/suite.py) regenerates the part between the markers and
`docs/benchmarks.json`; the rest of this page is written by hand.

{begin}
{end}
"""


def write_markdown(path, text):
    path = Path(path)
    doc = path.read_text() if path.exists() else DOC_TEMPLATE.format(begin=BEGIN, end=END)
    if BEGIN not in doc or END not in doc:
        doc = doc.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds; for the tests)")
    parser.add_argument("--inline", action="store_true", help="run every measurement in this process")
    parser.add_argument("--only", help="comma-separated sections: matmul,train,pipeline,generation,precision")
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
