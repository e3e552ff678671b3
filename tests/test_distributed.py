"""Distributed training keeps truncated BPTT right: same losses as one process.

Each run happens in a subprocess, because logical devices must be configured before
TensorFlow starts.
"""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import chord, write_pcm16

TWO_CPUS = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from speechgen.cli import main
main(sys.argv[1:])
"""


def utterance_corpus(root):
    """Eight utterances of different lengths and pitches: rows start new utterances
    mid-epoch, so per-row state resets happen on both replicas."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        seconds = rng.uniform(2.0, 5.0)
        write_pcm16(root / f"u{i}.wav", 4000, chord(4000, seconds, freqs=(110.0 * (1 + i % 4), 330.0, 550.0)))
    return root


def train(data, out, strategy, tmp_path):
    args = ["train", str(data), "--out", str(out), "--quiet", "--strategy", strategy,
            "--set", "window=40", "--set", "hop=40", "--set", "seq_len=10", "--set", "batch_size=4",
            "--set", "units=[16,16]", "--set", "epochs=3", "--set", "patience=0", "--set", "learning_rate=0.005",
            "--set", "split=[0.75,0.25,0.0]"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = [sys.executable, "-c", TWO_CPUS, *args]
    done = subprocess.run(code, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "history.csv") as f:
        return [(float(r["loss"]), float(r["val_loss"])) for r in csv.DictReader(f)], done.stdout


def test_mirrored_on_two_cpus_matches_one_process(tmp_path):
    corpus = utterance_corpus(tmp_path / "corpus")
    single, _ = train(corpus, tmp_path / "single", "none", tmp_path)
    mirrored, out = train(corpus, tmp_path / "mirrored", "mirrored", tmp_path)
    from speechgen.pipeline import plan

    # The schedule really resets rows mid-epoch (else the test would prove less).
    from speechgen.corpus import load_corpus

    c = load_corpus(corpus, [0.75, 0.25, 0.0])
    schedule = plan([len(p) for p in c.splits["train"]], 40, 40, 10, 4)
    assert schedule.fresh[1:].any()
    np.testing.assert_allclose(mirrored, single, rtol=1e-4)
    from speechgen.model import load_model

    model = load_model(tmp_path / "mirrored" / "model.keras")
    assert model.batch_size == 2  # 4 rows over 2 replicas


def test_batch_that_does_not_split_over_replicas_is_a_usage_error(tmp_path):
    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 30))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = ["train", str(data), "--out", str(tmp_path / "r"), "--strategy", "mirrored", "--set", "batch_size=3",
            "--set", "window=40", "--set", "hop=40", "--set", "seq_len=10"]
    done = subprocess.run([sys.executable, "-c", TWO_CPUS, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "batch_size 3 does not split over 2 replicas" in done.stderr
    assert not (tmp_path / "r").exists()
