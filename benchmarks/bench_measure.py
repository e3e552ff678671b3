"""The suite's measurements, one function per section (each runs in its own process;
see suite.py), and what they count with.

Every ``bench_*`` takes its parameter dict (see ``suite.plan``) and returns a JSON-able
dict. No figure here is asserted anywhere; the correctness figures they carry (the
``hoist_input`` model against the plain one, mixed_bfloat16 against float32) are, by
tests/test_bench.py.
"""

import dataclasses
import os
import platform
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from bench_data import RATE, training_data

# mixed_bfloat16 must end within this relative distance of float32's loss.
BF16_LOSS_TOLERANCE = 0.01


# -------------------------------------------------------------------- what is counted

def lstm_flops(window, hop, units, extra_inputs=0):
    """Forward FLOPs of one model step (multiply-adds count 2):
    ``sum_l 2 * (in_l + units_l) * 4 * units_l + 2 * units_last * hop``, with
    ``in_0 = window + extra_inputs`` (the phone inputs) and ``in_l = units_(l-1)``.
    Counts the matmuls only: gates, biases and activations are O(units), not O(units^2)."""
    total, inputs = 0, window + extra_inputs
    for u in units:
        total += 2 * (inputs + u) * 4 * u
        inputs = u
    return total + 2 * inputs * hop


# The layers of a tiered model that run once per sample (SampleRNN's sample-level MLP):
# the predictor and, below it, the head's output layer. The upper tier (``top_*``) runs
# once per ``top_frame`` samples; every other layer (the frame tier, its hoisted input
# projection, the upsampling, an untiered model's output layer) once per ``hop``.
PER_SAMPLE_LAYERS = ("predictor_input", "predictor_", "next_samples")


def layer_flops(model):
    """``[(layer name, forward FLOPs per call, samples per call)]`` of every matmul of a
    built :class:`SpeechRNN`, read from its layers' kernels (a multiply-add counts 2):

    - ``Dense`` with kernel ``(in, out)``: ``2 * in * out`` per call;
    - ``LSTM`` of ``units`` on ``in`` inputs (kernel ``(in, 4 units)``, recurrent kernel
      ``(units, 4 units)``): ``2 * (in + units) * 4 * units`` per step; the recurrent-only
      cell of ``hoist_input`` has the recurrent kernel only (its input kernel is the
      ``lstm_0_input`` Dense), so the model's total is the same;
    - embeddings, phone encodings, activations, biases, gates: 0 (lookups, or O(units)).

    Samples per call: 1 for a tiered model's predictor and output layer, ``top_frame`` for
    the upper tier, ``hop`` for everything else (the frame tier and the upsampling).
    """
    from keras import layers

    tiered = bool(model.predictor_units)
    out = []
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            flops = 2 * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.RNN):
            cell = layer.cell
            flops = 2 * sum(int(np.prod(w.shape)) for w in (getattr(cell, "kernel", None), cell.recurrent_kernel)
                            if w is not None)
        else:
            continue
        if layer.name.startswith("top_"):
            period = model.top_frame
        elif tiered and layer.name.startswith(PER_SAMPLE_LAYERS):
            period = 1
        else:
            period = model.hop
        out.append((layer.name, flops, period))
    return out


def flops_per_sample(model):
    """Forward FLOPs per sample of ``model`` (see :func:`layer_flops`): the sum over its
    matmuls of FLOPs per call / samples per call. Training counts 3 x this (forward,
    and the two matmuls of the backward pass). A float (exact for the recipes)."""
    return float(sum(Fraction(flops, period) for _, flops, period in layer_flops(model)))


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


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def variant_of(config):
    """How a training row's config differs from its preset's defaults, in words."""
    parts = [name for name, on in (("hoist_input", config.hoist_input == "on"), ("jit_compile", config.jit_compile == "on"),
                                   (config.mixed_precision, config.mixed_precision != "none")) if on]
    return " + ".join(parts) or "default"


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


def bench_train(p):
    """Train steps through ``model.fit`` on the tf.data pipeline (repeated), compiled as
    ``speechgen train`` compiles (the head's loss and metrics, ``jit_compile`` from the
    config; categorical heads get class-id targets from the pipeline, as in training).
    FLOPs: :func:`flops_per_sample` of the built model, x3 for training."""
    from speechgen.model import build_model
    from speechgen.model.model import copy_to_hoisted
    from speechgen.training.callbacks import ResetStates
    from speechgen.training.optimizer import make_optimizer

    here = None
    if p.get("ceiling_shape"):
        # The matmul ceiling again, in this process just before training: the CPU is
        # shared, so a ceiling taken minutes earlier may be under another load.
        here = bench_matmul({"shapes": [p["ceiling_shape"]], "dtypes": ["float32"], "repeats": 3,
                             "min_seconds": 0.2})["ceiling_gflops_f32"]
    with tempfile.TemporaryDirectory() as tmp:
        config, corpus, normaliser, phones, data, ds, schedule = training_data(p, tmp)
        inventory = phones[0].to_list() if phones else None
        model = build_model(config, corpus.rate, normaliser, data, phones=inventory)
        check = None
        if model.hoist_input:  # hoist_input on, or auto on this CPU
            # Correctness: the same outputs as the plain model with the same weights. The
            # plain model's initial weights (the same seed as the default row) are given
            # to the hoisted one, so the two rows also train from the same start.
            plain = build_model(dataclasses.replace(config, hoist_input="off"), corpus.rate, normaliser, data,
                                phones=inventory)
            copy_to_hoisted(plain, model)
            x = next(iter(ds))[0]
            check = max_abs_diff(model.predict_on_batch(x), plain.predict_on_batch(x))
            model.reset_rnn_states()
            del plain
        jit = {"on": {"jit_compile": True}, "off": {"jit_compile": False}}.get(config.jit_compile, {})
        model.compile(optimizer=make_optimizer(config), loss=model.head.loss(), metrics=model.head.metrics(), **jit)
        clock = _StepClock()
        warm, timed = p["warm"], p["timed"]
        model.fit(ds.repeat(), steps_per_epoch=warm + timed, epochs=1, shuffle=False, verbose=0,
                  callbacks=[ResetStates(schedule), clock])
        # Median of the timed steps: on a shared CPU one step slowed by another job's
        # burst should not move the figure; the mean and the fastest are kept too.
        steps = np.diff(clock.ends[warm - 1:])
        step = float(np.median(steps))
        per_batch = config.batch_size * config.seq_len
        out = {
            "variant": variant_of(config), "hoist_input": model.hoist_input, "jit_compile": config.jit_compile,
            "mixed_precision": config.mixed_precision, "window": config.window, "head": model.head.describe(),
            "predictor_units": config.predictor_units, "parameters": model.count_params(),
            "hop": config.hop, "units": config.units, "batch_size": config.batch_size,
            "seq_len": config.seq_len, "warm_steps": warm, "timed_steps": timed,
            "first_step_s": clock.ends[0] - clock.begin, "step_s": step, "step_times_s": steps.tolist(),
            "step_mean_s": float(steps.mean()), "step_min_s": float(steps.min()),
            "steps_per_s": per_batch / step, "samples_per_s": per_batch * config.hop / step,
            "losses": clock.losses, "final_loss": clock.losses[-1], "max_abs_diff_vs_plain": check,
            "data": "one WAV file, phones=none" if p["data"] == "file" else
                    f"folder of {p['utterances']} x {p['seconds']} s utterances with .PHN",
        }
        # Read from the built model's layers (phone inputs widen the first LSTM's kernel;
        # a tiered model's predictor runs per sample): per model step = hop samples.
        per_sample = flops_per_sample(model)
        out["flops_per_sample_forward"] = per_sample
        out["flops_per_step_forward"] = fwd = per_sample * config.hop
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
        config, _, _, _, _, ds, schedule = training_data(p, tmp)
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
    """Naive per-step predict, model(x) per step, the compiled loop (1 and N streams):
    benchmarks/generation.py's measurement."""
    from generation import bench

    units, window, hop = p["units"], p["window"], p["hop"]
    min_s = p.get("min_seconds", 1.0)
    many_s = p.get("seconds_many", p["seconds"])
    rows = bench(units, window, hop, RATE, p["streams"], p["seconds"], p["naive_steps"], min_s, many_s)
    return {"units": units, "window": window, "hop": hop, "rate": RATE,
            "flops_per_sample": lstm_flops(window, hop, units) / hop, "rows": rows}


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
