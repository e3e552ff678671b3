"""The recommended recipes' measurements (issue 14): ``configs/speech.yaml`` and
``configs/music.yaml``, each in its own process (see suite.py).

- time to quality (``bench_time_to_quality``): wall-clock seconds of ``speechgen
  train``'s training of the speech recipe on real speech (``../shared/corpora/
  prompts-real``) until its validation NLL first reaches a gate, the LPC baseline's bits
  (:class:`speechgen.measures.baselines.CategoricalBaselines`, what ``evaluate`` prints)
  minus 0.3 bits per sample, checked every few batches on a copy of the model;
- generation (``bench_recipe_generation``): the speech recipe's model (untrained: speed
  does not depend on the weights) generating 1 or N streams with
  :class:`speechgen.generate.Generator`, as one compiled loop and as one compiled call
  per frame (prism-samplernn's way, ``free_run(..., chunk_steps=1)``), and, at one
  stream, the naive loops: one Keras call per generated sample from Python
  (``model.predict``, and ``model(x)``), as tests/test_generate.py's stepped reference
  steps a tiered model.

The training throughput of the recipes is bench_measure.bench_train's. FLOPs are
bench_measure.flops_per_sample's. Every row records the load average before and after
it and its own peak RSS (``/proc/self/status`` VmHWM, reset before the row), besides the
process's peak that suite.py reads.
"""

import json
import math
import time
from pathlib import Path

import numpy as np

from bench_data import RATE
from bench_measure import bench_matmul, flops_per_sample, layer_flops, load, max_abs_diff

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
# The time-to-quality gate: this many bits per sample below the LPC baseline.
GATE_BELOW_LPC = 0.3


# ------------------------------------------------------------------------ per-row memory

def reset_peak_rss():
    """Set this process's peak RSS (VmHWM) back to its current RSS (Linux 4.0+); False
    where the kernel does not allow it (the rows then report the process's peak so far)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_now_mib():
    """VmHWM of this process in MiB (the peak since the last :func:`reset_peak_rss`)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Row:
    """Times one row: the load average before and after, its seconds, its peak RSS."""

    def __enter__(self):
        self.load_before = load()
        reset_peak_rss()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
        self.peak_rss_mib = peak_rss_now_mib()
        self.load_after = load()
        return False


# ----------------------------------------------------------------------------- the model

def recipe_config(preset, sets=None):
    from speechgen.config import load_config

    return load_config([preset], ["phones=none", *(f"{k}={json.dumps(v)}" for k, v in (sets or {}).items())])


def recipe_model(config, batch_size=1):
    """The recipe's model, untrained (seeded as ``train`` seeds it), normalised as
    ``minmax`` over [-1, 1]."""
    from speechgen.data.corpus import Normaliser
    from speechgen.model import build_model

    return build_model(config, RATE, Normaliser("minmax", 0.0, 1.0), "untrained", batch_size=batch_size)


# --------------------------------------------------------------------- the naive loop

def naive_prime(net, prime):
    """Teacher-force ``prime (N, samples)`` through ``net`` (batch N) in one call, as
    :meth:`Generator.prime` does: -> ``(signal, steps)``, the samples used and the
    number of primed steps."""
    from speechgen.data.framing import Framing

    framing = Framing.of(net)
    steps = framing.steps(prime.shape[1])
    signal = np.array(prime[:, prime.shape[1] - (steps * net.hop + net.window):], np.float32)
    net.reset_rnn_states()
    if steps:
        net(framing.step_inputs(signal), training=False)
    return signal, steps


def naive_run(net, signal, steps, n_steps, seed=0, temperature=1.0, predict=True):
    """The naive loop: one Keras call from Python per generated sample (per step for an
    untiered model), ``net.predict`` (``predict``) or ``net(x)``, each call reading the
    step's window and the samples drawn so far (the rest zero: a causal model does not
    read them), with the LSTM state saved before a step and put back before each of its
    samples' calls (tests/test_generate.py's reference, without an upper tier). Every
    draw is the head's, with the compiled loop's keys, so with the same seed it draws
    the same samples as :class:`Generator`.

    Returns ``(N, n_steps * hop)`` float32.
    """
    from speechgen.data.framing import Framing
    from speechgen.generate import draw_key

    if getattr(net, "top_units", None):
        raise ValueError("naive_run steps models without an upper tier only")
    w, h, la = net.window, net.hop, Framing.of(net).lookahead
    n, start = signal.shape[0], signal.shape[1]
    signal = np.concatenate([signal, np.zeros((n, n_steps * h), np.float32)], axis=1)
    call = (lambda x: net.predict(x, verbose=0)) if predict else (lambda x: net(x, training=False))
    variables = net._rnn_state_variables()
    for i in range(n_steps):
        t = steps + i
        first = w + t * h  # the step's first target sample in ``signal``
        saved = [v.numpy() for v in variables]
        for j in range(h if la else 1):
            for v, s in zip(variables, saved):
                v.assign(s)
            y = call(signal[:, None, t * h: t * h + w + la])
            if la:
                drawn = net.head.sample(y[:, 0, j: j + 1], draw_key(seed, i, j), temperature)
                signal[:, first + j] = np.asarray(drawn)[:, 0]
            else:
                signal[:, first: first + h] = np.asarray(net.head.sample(y[:, 0], draw_key(seed, i), temperature))
    return signal[:, start:]


# ----------------------------------------------------------------------- generation

def bench_recipe_generation(p):
    """One stream count of the recipe's generation.

    ``p``: ``preset``, ``sets``, ``streams`` (N), ``seconds`` (audio per stream per timed
    run), ``rounds`` (timed runs per variant, round robin; the fastest counts),
    ``naive_steps`` / ``naive_call_steps`` (steps of the naive ``predict`` / ``model(x)``
    loops, 1 stream only; 0 skips them), ``prime`` (priming samples), optional
    ``ceiling_shape`` (a matmul timed in this process first: the ceiling).

    Correctness figures: the per-frame variant's samples against the one-loop
    variant's (same seed and prime: equal), and the naive loops' against the compiled
    loop's first steps.
    """
    from speechgen.generate import Generator

    here = None
    if p.get("ceiling_shape"):
        here = bench_matmul({"shapes": [p["ceiling_shape"]], "dtypes": ["float32"], "repeats": 3,
                             "min_seconds": 0.2})["ceiling_gflops_f32"]
    config = recipe_config(p["preset"], p.get("sets"))
    model = recipe_model(config, batch_size=1)
    n, hop = p["streams"], config.hop
    steps = max(1, round(p["seconds"] * RATE / hop))
    prime = np.random.default_rng(0).normal(scale=0.1, size=(1, p.get("prime", 1024))).astype(np.float32)
    primes = np.repeat(prime, n, axis=0)
    gen = Generator(model, streams=n, seed=0, temperature=1.0)
    variants = {"compiled loop (one call)": steps, "compiled call per frame": 1}  # name -> chunk_steps
    compile_s = {}
    for name, chunk in variants.items():  # compile (and run once) before timing
        window, _ = gen.prime(primes)
        started = time.perf_counter()
        gen.free_run(window, chunk, chunk_steps=chunk)
        compile_s[name] = time.perf_counter() - started
    best, outputs, rows = {}, {}, {}
    for _ in range(p.get("rounds", 2)):
        for name, chunk in variants.items():
            window, _ = gen.prime(primes)
            with Row() as row:
                out = gen.free_run(window, steps, chunk_steps=chunk)
            outputs.setdefault(name, out)
            if name not in best or row.seconds < best[name].seconds:
                best[name] = row
            first = rows.setdefault(name, {"load_before": row.load_before, "peak_rss_mib": 0.0})
            first["load_after"] = row.load_after
            first["peak_rss_mib"] = max(first["peak_rss_mib"], row.peak_rss_mib)
    result_rows = []
    for name, chunk in variants.items():
        seconds = best[name].seconds
        result_rows.append({
            "method": name, "streams": n, "chunk_steps": chunk, "steps": steps, "audio_seconds": n * steps * hop / RATE,
            "seconds": seconds, "samples_per_s": n * steps * hop / seconds,
            "real_time_factor": n * steps * hop / seconds / RATE, "compile_and_first_s": compile_s[name],
            **rows[name]})
    loop = outputs["compiled loop (one call)"]
    out = {
        "preset": p["preset"], "streams": n, "window": config.window, "hop": hop, "units": config.units,
        "predictor_units": config.predictor_units, "input_embedding": config.input_embedding,
        "levels": config.levels, "parameters": model.count_params(), "rate": RATE,
        "flops_per_sample": flops_per_sample(model), "layer_flops": layer_flops(model),
        "matmul_gflops_here": here, "lookup_tables": getattr(gen, "_table", None) is not None,
        "per_frame_vs_loop_max_abs_diff": max_abs_diff(outputs["compiled call per frame"], loop),
        "generated_shape": list(loop.shape), "generated_finite": bool(np.isfinite(loop).all()),
        "generated_in_range": bool(np.abs(loop).max() <= 1.0 + 1e-6),
    }
    if n == 1 and p.get("naive_steps"):
        net = model.with_batch_size(1)
        naive_prime(net, prime)  # trace the calls once before timing
        naive_run(net, *naive_prime(net, prime), 1, predict=True)
        naive_run(net, *naive_prime(net, prime), 1, predict=False)
        for name, k, predict in (("naive model.predict per sample", p["naive_steps"], True),
                                 ("naive model(x) per sample", p.get("naive_call_steps", p["naive_steps"]), False)):
            signal, primed = naive_prime(net, prime)
            with Row() as row:
                drawn = naive_run(net, signal, primed, k, predict=predict)
            result_rows.insert(0 if predict else 1, {
                "method": name, "streams": 1, "chunk_steps": None, "steps": k, "audio_seconds": k * hop / RATE,
                "seconds": row.seconds, "samples_per_s": k * hop / row.seconds,
                "real_time_factor": k * hop / row.seconds / RATE, "load_before": row.load_before,
                "load_after": row.load_after, "peak_rss_mib": row.peak_rss_mib,
                "vs_compiled_max_abs_diff": max_abs_diff(drawn, loop[:, : k * hop]),
                "vs_compiled_equal_share": float(np.mean(np.isclose(drawn, loop[:, : k * hop], atol=1e-5))),
            })
    out["rows"] = result_rows
    return out


# ------------------------------------------------------------------ time to quality

def corpus_path(name):
    """``prompts-real`` (and the other shared corpora) by name, else a path."""
    return CORPORA / name if "/" not in str(name) else Path(name)


def bench_time_to_quality(p):
    """Train the recipe on real speech as ``speechgen train`` does until its validation
    NLL first reaches ``LPC bits - gate_below_lpc`` or ``time_limit`` seconds of
    training pass.

    ``p``: ``preset``, ``sets`` (config overrides), ``corpus`` (a name under
    ``../shared/corpora`` or a path), ``check_every`` (training batches between
    snapshots of the weights; the newest is scored unless the scoring so far took more
    than ``max_check_share``, 0.25, of the training time, and when it meets the gate the
    snapshots since the previous scored one are scored in order, so the first crossing
    is resolved to ``check_every`` batches), ``valid_batches`` (the fixed validation subset: the first that many
    batches of the validation schedule; 0 = all), ``time_limit`` (seconds of training),
    ``gate_below_lpc`` (0.3), ``baseline_samples`` (samples the baselines read per
    split; 4,000,000 as in ``evaluate``).

    A check copies the weights into a second model of the same batch size (the training
    model's LSTM state is left alone) and scores the subset teacher-forced, with the
    state zeroed at its start and per row where a stream starts (as a validation pass):
    bits = summed cross-entropy / targets / ln 2, as ``evaluate`` computes it. The time
    reported is training only: from the start of ``fit`` (tracing included) to the end of
    the batch of the first snapshot that met the gate, less the time the snapshots and
    checks took. (Snapshots between two scored ones are scored only when the later one
    meets the gate: a noisy dip below it and back inside one interval would be missed.)
    Returns ``{"skipped": reason}`` when the corpus is absent.
    """
    import keras
    import tensorflow as tf

    from speechgen.data.corpus import Normaliser, load_corpus
    from speechgen.data.trim import trim_of
    from speechgen.measures.baselines import CategoricalBaselines
    from speechgen.train import _datasets, _new_model, _steps_per_epoch
    from speechgen.training.callbacks import ResetStates

    path = corpus_path(p["corpus"])
    if not path.exists():
        return {"skipped": f"{path} is absent (the shared corpora are not on this machine): time to quality "
                           "needs real speech, not measured"}
    config = recipe_config(p["preset"], p.get("sets"))
    prepared = time.perf_counter()
    corpus = load_corpus(path, config.split, config.seed, trim=trim_of(config.trim_silence, config.trim_margin))
    normaliser = Normaliser.fit(config.normalisation, corpus.splits["train"], config.pre_emphasis)
    baselines = CategoricalBaselines(corpus.splits["train"], normaliser, config.levels, config.quantisation,
                                     max_samples=p.get("baseline_samples", 4_000_000))
    lpc = baselines.score(corpus.splits["valid"])
    gate = lpc["lpc"] - p.get("gate_below_lpc", GATE_BELOW_LPC)
    datasets = _datasets(corpus, normaliser, config, None)
    (train_ds, train_plan), (valid_ds, valid_plan) = datasets
    steps_per_epoch = _steps_per_epoch(datasets, config)
    model = _new_model(corpus, normaliser, None, config, config.batch_size, steps_per_epoch)
    scorer = model.with_batch_size(config.batch_size)
    k = p.get("valid_batches", 0) or valid_plan.n_batches
    subset = list(valid_ds.take(k))
    valid_samples = sum(int(np.prod(y.shape)) for _, y in subset)

    @tf.function
    def nats(x, y):
        logits = scorer(x, training=False)
        return keras.ops.sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    def valid_bits(weights):
        scorer.set_weights(weights)
        scorer.reset_rnn_states()
        total = 0.0
        for b, (x, y) in enumerate(subset):
            rows = valid_plan.rows_to_reset(b)
            if rows is not None:
                scorer.reset_rnn_rows(rows)
            total += float(nats(x, y))
        return total / valid_samples / math.log(2.0)

    untrained = valid_bits(model.get_weights())  # also traces the scorer before the clock starts
    setup_s = time.perf_counter() - prepared
    limit, every, share = p["time_limit"], p["check_every"], p.get("max_check_share", 0.25)

    class Gate(keras.callbacks.Callback):
        """Every ``every`` batches, a snapshot of the weights; the newest is scored unless
        the scoring so far took more than ``share`` of the training time. When it meets
        the gate, the snapshots since the last scored one are scored in order too, so the
        crossing is found to ``every`` batches however rarely the checks run."""

        def __init__(self):
            super().__init__()
            self.batches, self.check_s, self.checks, self.pending, self.reached = 0, 0.0, [], [], None

        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            train_s = time.perf_counter() - self.begin - self.check_s
            over = train_s >= limit
            if self.batches % every and not over:
                return
            started = time.perf_counter()
            point = {"batches": self.batches, "train_s": train_s,
                     "train_bits": float((logs or {}).get("bits", float("nan"))), "load": load()[0]}
            self.pending.append((point, self.model.get_weights()))
            if self.check_s <= share * train_s or over:
                point["valid_bits"] = valid_bits(self.pending[-1][1])
                if point["valid_bits"] <= gate:
                    for earlier, weights in self.pending[:-1]:
                        earlier["valid_bits"], earlier["refined"] = valid_bits(weights), True
                        self.checks.append(earlier)
                        if earlier["valid_bits"] <= gate:
                            break
                self.checks.append(point)
                self.pending = []
                self.reached = next((c for c in self.checks if c["valid_bits"] <= gate), None)
                if self.reached or over:
                    self.model.stop_training = True
            self.check_s += time.perf_counter() - started

    clock = Gate()
    load_before = load()
    fit_started = time.perf_counter()
    model.fit(train_ds, epochs=10**6, shuffle=False, verbose=0, callbacks=[ResetStates(train_plan), clock])
    wall = time.perf_counter() - fit_started
    last = clock.checks[-1] if clock.checks else None
    at = clock.checks.index(clock.reached) if clock.reached else 0
    before = clock.checks[at - 1] if at else None
    return {
        "preset": p["preset"], "corpus": str(path), "split_seconds": {s: corpus.seconds(s) for s in corpus.splits},
        "head": model.head.describe(), "parameters": model.count_params(), "batch_size": config.batch_size,
        "seq_len": config.seq_len, "hop": config.hop, "batches_per_epoch": steps_per_epoch,
        "samples_per_batch": config.batch_size * config.seq_len * config.hop,
        "jit_compile": config.jit_compile, "hoist_input": model.hoist_input,
        "lpc_bits": lpc["lpc"], "histogram_bits": lpc["histogram"], "gate_below_lpc": p.get("gate_below_lpc", GATE_BELOW_LPC),
        "gate_bits": gate, "untrained_bits": untrained,
        "valid_batches": k, "valid_batches_in_split": valid_plan.n_batches, "valid_samples": valid_samples,
        "check_every": every, "max_check_share": share, "time_limit_s": limit,
        "reached": clock.reached is not None,
        "seconds": clock.reached["train_s"] if clock.reached else None,
        "batches": clock.reached["batches"] if clock.reached else None,
        "bits_reached": clock.reached["valid_bits"] if clock.reached else None,
        "check_before": before, "last_check": last, "checks": clock.checks, "train_s": last["train_s"] if last else None,
        "check_s": clock.check_s, "fit_wall_s": wall, "setup_s": setup_s,
        "load_before_fit": load_before, "load_after_fit": load(),
    }


KINDS = {"time_to_quality": bench_time_to_quality, "recipe_generation": bench_recipe_generation}
