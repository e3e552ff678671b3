"""Distributed training keeps truncated BPTT right: same losses as one process.

Each run happens in a subprocess, because logical devices must be configured before
TensorFlow starts.
"""

import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fixtures import PHONES, chord, chord_corpus, utterance_corpus, write_pcm16

TWO_CPUS = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from speechgen.cli import main
main(sys.argv[1:])
"""


def training_sets(epochs=3, extra=()):
    """The ``--set`` options every run of this file trains with (single, mirrored, workers),
    then ``extra`` ones (later ones win)."""
    sets = ["window=40", "hop=40", "seq_len=10", "batch_size=4", "units=[16,16]", f"epochs={epochs}",
            "patience=0", "learning_rate=0.005", "split=[0.75,0.25,0.0]", *extra]
    return [x for s in sets for x in ("--set", s)]


# A tiny tiered categorical model (a frame tier of 16 units over a sample-level predictor
# with an input embedding), phone-conditioned at its top tier.
TIERED = ["units=[16]", "output=categorical", "levels=16", "predictor_units=[8]", "predictor_window=8",
          "input_embedding=2", "phones=current", "phone_embedding=2"]


def train(data, out, strategy, tmp_path, epochs=3, extra=()):
    args = ["train", str(data), "--out", str(out), "--quiet", "--strategy", strategy, *training_sets(epochs, extra)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = [sys.executable, "-c", TWO_CPUS, *args]
    done = subprocess.run(code, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return history(out), done.stdout


def history(run):
    """A run's ``(loss, val_loss)`` per epoch."""
    with open(run / "history.csv") as f:
        return [(float(r["loss"]), float(r["val_loss"])) for r in csv.DictReader(f)]


def test_mirrored_on_two_cpus_matches_one_process(tmp_path):
    corpus = utterance_corpus(tmp_path / "corpus")  # rows start new utterances mid-epoch, on both replicas
    single, _ = train(corpus, tmp_path / "single", "none", tmp_path)
    mirrored, out = train(corpus, tmp_path / "mirrored", "mirrored", tmp_path)
    from speechgen.data.framing import Framing
    from speechgen.data.pipeline import plan

    # The schedule really resets rows mid-epoch (else the test would prove less).
    from speechgen.data.corpus import load_corpus

    c = load_corpus(corpus, [0.75, 0.25, 0.0])
    schedule = plan([len(p) for p in c.splits["train"]], Framing(40, 40, 10), 4)
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


def free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def multi_worker(args, tmp_path, n_workers=2):
    """Run ``speechgen train ARGS --strategy multi-worker`` as ``n_workers`` worker
    processes on localhost (one CPU replica each); their (stdout, stderr)."""
    import json

    cluster = {"worker": [f"localhost:{p}" for p in free_ports(n_workers)]}
    args = ["train", *args, "--quiet", "--strategy", "multi-worker"]
    procs = []
    for i in range(n_workers):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, "-m", "speechgen.cli", *args], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-2000:]
    return outputs


def test_multi_worker_on_two_processes_matches_one_process(tmp_path):
    corpus = utterance_corpus(tmp_path / "corpus")
    single, _ = train(corpus, tmp_path / "single", "none", tmp_path, epochs=4)
    outputs = multi_worker([str(corpus), "--out", str(tmp_path / "multi"), *training_sets()], tmp_path)
    np.testing.assert_allclose(history(tmp_path / "multi"), single[:3], rtol=1e-4)
    # The chief (worker 0) wrote the run; worker 1 says so and wrote nothing there.
    assert "run written to" in outputs[0][0]
    assert "the chief worker writes the run" in outputs[1][0]
    assert "Using CollectiveAllReduceStrategy eagerly" not in outputs[1][1]
    from speechgen.model import load_model

    assert load_model(tmp_path / "multi" / "model.keras").batch_size == 2  # 4 rows over 2 workers
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == sorted(
        ["checkpoint.keras", "config.yaml", "curves.png", "history.csv", "model.keras", "summary.json"])
    # Resumed across the same two workers, it goes on as the single process did.
    multi_worker(["--resume", str(tmp_path / "multi"), "--set", "epochs=4"], tmp_path)
    np.testing.assert_allclose(history(tmp_path / "multi"), single, rtol=1e-4)


@pytest.mark.parametrize("tf_config, problem", [
    (None, "--strategy multi-worker: set TF_CONFIG"),
    ("{not json", "TF_CONFIG: expected"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "TF_CONFIG: expected"),
])
def test_multi_worker_without_a_good_tf_config_is_a_usage_error(tmp_path, tf_config, problem):
    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 10))
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    done = subprocess.run([sys.executable, "-m", "speechgen.cli", "train", str(data), "--out", str(tmp_path / "r"),
                           "--strategy", "multi-worker"], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert problem in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_tiered_phone_conditioned_model_trains_mirrored_and_over_workers_as_one_process(tmp_path):
    # Short labelled utterances (14 batches an epoch) keep four trainings cheap.
    corpus = chord_corpus(tmp_path / "corpus", 4000, 8, (0.6, 1.5), freqs=lambda u: (110.0 * (1 + u % 4), 330.0, 550.0),
                          phones=PHONES[1:4])
    from speechgen.data.corpus import load_corpus
    from speechgen.data.framing import Framing
    from speechgen.data.pipeline import plan

    c = load_corpus(corpus, [0.75, 0.25, 0.0])
    fresh = plan([len(p) for p in c.splits["train"]], Framing(40, 40, 10, 39), 4).fresh
    assert fresh[1:, :2].any() and fresh[1:, 2:].any()  # new utterances mid-epoch on both replicas' rows
    # The runs are independent processes: side by side, they take less wall time.
    with ThreadPoolExecutor(3) as pool:
        # The mirrored run also listens (listen_every): that must not change its training.
        runs = [pool.submit(train, corpus, tmp_path / out, strategy, tmp_path, 2, TIERED + extra)
                for out, strategy, extra in (("single", "none", []), ("mirrored", "mirrored", ["listen_every=1"]))]
        # One epoch over two workers, then resumed there for the second.
        pool.submit(multi_worker, [str(corpus), "--out", str(tmp_path / "multi"), *training_sets(1, TIERED)],
                    tmp_path).result()
        (single, _), (mirrored, _) = (r.result() for r in runs)
    np.testing.assert_allclose(mirrored, single, rtol=1e-4)
    # Resumed listening: the chief generates and records it, the other worker waits.
    multi_worker(["--resume", str(tmp_path / "multi"), "--set", "epochs=2", "--set", "listen_every=1"], tmp_path)
    np.testing.assert_allclose(history(tmp_path / "multi"), single, rtol=1e-4)
    for run, heard in (("mirrored", [True, True]), ("multi", [False, True]), ("single", [False, False])):
        with open(tmp_path / run / "history.csv") as f:
            assert [np.isfinite(float(r["listen_q"])) for r in csv.DictReader(f)] == heard, run
    from speechgen.model import load_model

    reference = load_model(tmp_path / "single" / "model.keras")
    assert reference.predictor_units == [8] and reference.input_embedding == 2 and reference.phones
    for run in ("mirrored", "multi"):
        model = load_model(tmp_path / run / "model.keras")
        assert model.batch_size == 2
        for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_jit_compile_on_trains_mirrored_uncompiled_with_the_compiled_single_process_losses(tmp_path):
    """The music recipe sets ``jit_compile: on``. TensorFlow's XLA cannot compile a step
    whose variables are mirrored over replicas, so under ``--strategy mirrored`` the
    step runs uncompiled (and says so); its losses are those of one process running the
    XLA-compiled step (which also pins XLA's step to the plain maths)."""
    corpus = chord_corpus(tmp_path / "corpus", 4000, 8, (0.6, 1.0), phones=PHONES)
    sets = [*TIERED, "jit_compile=on", "hoist_input=on"]
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(train, corpus, tmp_path / out, strategy, tmp_path, 2, sets)
                for out, strategy in (("single", "none"), ("mirrored", "mirrored"))]
        (single, single_out), (mirrored, mirrored_out) = (r.result() for r in runs)
    np.testing.assert_allclose(mirrored, single, rtol=1e-4)
    assert "jit_compile on is not used under a distribution strategy" in mirrored_out
    assert "jit_compile on is not used" not in single_out
