"""Generation speed: the compiled loop against the naive per-step ``model.predict`` loop.

Measures, in one run on this machine, for a 3 x 128 LSTM with a 64-sample window at
16 kHz (the sample-level setting), and optionally a frame-level model:

- naive: one ``model.predict`` call per step (what most Keras code does);
- keras-call: one ``model(x)`` call per step;
- compiled: speechgen's XLA while-loop (:class:`speechgen.generate.Generator`), one
  stream and N streams.

Prints samples per second, the real-time factor (generated seconds per wall second)
and the ratio to the naive loop; ``--json FILE`` writes the figures. Weights are
random: speed does not depend on them.

    python benchmarks/generation.py [--streams 64] [--seconds 2] [--json out.json]
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def timed(fn, min_seconds=1.0, warmup=True):
    """Run ``fn`` until at least ``min_seconds`` have passed; return seconds per call."""
    if warmup:
        fn()  # tracing, XLA compilation
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / calls


def bench(units, window, hop, rate, streams, seconds, naive_steps, min_seconds=1.0, seconds_many=None):
    from speechgen.generate import Generator
    from speechgen.model import SpeechRNN

    model = SpeechRNN(window=window, hop=hop, units=units, batch_size=1, sample_rate=rate)
    prime = np.random.default_rng(0).normal(scale=0.1, size=(1, 4 * window)).astype(np.float32)
    rows = []

    def record(name, n_streams, steps, seconds_per_call):
        samples = n_streams * steps * hop / seconds_per_call
        rows.append({
            "method": name, "streams": n_streams, "samples_per_s": samples,
            "real_time_factor": samples / rate,
        })

    x = prime[:, None, :window]
    record("naive model.predict per step", 1, naive_steps,
           timed(lambda: [model.predict(x, verbose=0) for _ in range(naive_steps)], min_seconds / 2))
    record("model(x) per step", 1, naive_steps,
           timed(lambda: [model(x, training=False) for _ in range(naive_steps)], min_seconds / 2))
    for n in (1, streams):
        # seconds_many: audio per stream per timed call with N streams (default: seconds).
        steps = max(1, int((seconds if n == 1 or seconds_many is None else seconds_many) * rate / hop))
        gen = Generator(model, streams=n)
        window_, _ = gen.prime(np.repeat(prime, n, axis=0))
        record("compiled (XLA while-loop)", n, steps,
               timed(lambda: gen.free_run(window_, steps, chunk_steps=steps), min_seconds))
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["vs_naive"] = r["samples_per_s"] / base
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per timed call")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    import tensorflow as tf

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}"
    settings = {
        "sample-level 3 x 128 LSTM, window 64, hop 1, 16 kHz": ([128, 128, 128], 64, 1, 16000, 100),
        "frame-level 3 x 600 LSTM, window = hop = 200, 16 kHz": ([600, 600, 600], 200, 200, 16000, 20),
    }
    report = {"machine": machine, "results": {}}
    print(f"# generation speed ({machine})\n")
    for title, (units, window, hop, rate, naive_steps) in settings.items():
        rows = bench(units, window, hop, rate, args.streams, args.seconds, naive_steps)
        report["results"][title] = rows
        print(f"## {title}\n")
        print("| method | streams | samples/s | real-time factor | vs naive |")
        print("| --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| {r['method']} | {r['streams']} | {r['samples_per_s']:,.0f} | "
                  f"{r['real_time_factor']:.2f}x | {r['vs_naive']:.0f}x |")
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
