"""Memory does not grow with the corpus: peak RSS of one training epoch on 1 h and 10 h.

Writes synthetic 16 kHz 16-bit WAVs of 1 and 10 hours (noisy chords; 115 MB and 1.15 GB,
kept in --dir for reuse), then trains one epoch of a small frame-level model on each in
a fresh process (`speechgen train`, which also evaluates every split at the end) and
reports each process's peak resident set size. Target: the 10-hour run's peak RSS at
most 1.2x the 1-hour run's.

    python benchmarks/memory.py [--dir /tmp/speechgen-memory] [--json out.json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_data import RATE, write_long_wav  # the chord (tests/fixtures.py), a minute at a time

SETS = ["window=400", "hop=400", "seq_len=100", "batch_size=64", "units=[32]", "epochs=1", "patience=0"]


def peak_rss_of(cmd, log):
    """Run ``cmd``; return (seconds, peak RSS in MB of that child alone).

    ``os.wait4`` gives the resource usage of exactly that child (getrusage of
    RUSAGE_CHILDREN would be the maximum over every child so far).
    """
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): see {log}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/speechgen-memory")
    parser.add_argument("--json")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for hours in (1, 10):
        wav = folder / f"{hours}h.wav"
        if not wav.exists() or wav.stat().st_size != 44 + 2 * RATE * 3600 * hours:
            write_long_wav(wav, hours)
        run = folder / f"run-{hours}h"
        shutil.rmtree(run, ignore_errors=True)
        sets = [x for s in SETS for x in ("--set", s)]
        seconds, rss = peak_rss_of([sys.executable, "-m", "speechgen.cli", "train", str(wav), "--out", str(run),
                                    "--quiet", *sets], folder / f"train-{hours}h.log")
        results[f"{hours} h"] = {"file_mb": wav.stat().st_size / 1e6, "seconds": seconds, "peak_rss_mb": rss}
        print(f"{hours:>2} h of 16 kHz audio ({wav.stat().st_size / 1e6:,.0f} MB): one epoch + evaluation in "
              f"{seconds:.0f} s, peak RSS {rss:,.0f} MB", flush=True)
    ratio = results["10 h"]["peak_rss_mb"] / results["1 h"]["peak_rss_mb"]
    results["ratio_10h_to_1h"] = ratio
    print(f"peak RSS ratio 10 h / 1 h: {ratio:.2f} (target <= 1.2): {'PASS' if ratio <= 1.2 else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
