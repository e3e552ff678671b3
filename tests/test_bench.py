"""The benchmark suite: what it counts, the audio it writes, and a tiny smoke run of every section.

No timing is asserted: the figures depend on the machine and its load; only that each
measurement ran and produced positive numbers, and the correctness figures it carries
(the ``hoist_input`` model against the plain one with the same weights, mixed_bfloat16
against float32) within their tolerances.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_suite():
    """benchmarks/suite.py as a module (it puts benchmarks/ and tests/ on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location("bench_suite", ROOT / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measure():
    load_suite()
    import bench_measure

    return bench_measure


def test_flops_counted_by_hand(measure):
    # 1 x 2 LSTM on 3-sample windows, Dense 2 -> 5: 8 gate outputs of (3 + 2) multiply-adds
    # = 40, Dense 2 x 5 = 10: 50 multiply-adds, 100 FLOP.
    assert measure.lstm_flops(3, 5, [2]) == 100
    # 2 -> 4 on top, hop 1: 40 + 16 gate outputs x (2 + 4) = 96, Dense 4: 140 MACs.
    assert measure.lstm_flops(3, 1, [2, 4]) == 280
    # 4 phone inputs widen the first layer's input to 7: 8 x 9 = 72, Dense 2: 74 MACs.
    assert measure.lstm_flops(3, 1, [2], extra_inputs=4) == 148
    # The figures docs/benchmarks.md quotes: frame16k 110.4 MFLOP per frame, the
    # sample-level 3 x 128 model with k = 64 721,152 FLOP per sample.
    assert measure.lstm_flops(16000, 16000, [600, 600, 600]) == 110_400_000
    assert measure.lstm_flops(64, 1, [128, 128, 128]) == 721_152


@pytest.mark.parametrize("kwargs, extra", [
    ({}, 0),
    ({"hoist_input": True}, 0),
    ({"phones": ["a", "b", "c"], "phone_context": 3}, 9),  # one-hot: 3 phones x 3 positions
    ({"phones": ["a", "b", "c"], "phone_context": 3, "phone_embedding": 2}, 6),
])
def test_flops_are_two_per_weight_of_the_models_matmuls(measure, kwargs, extra):
    """Forward, every kernel entry is one multiply-add per step: FLOPs = 2 x (parameters
    less biases and the phone lookup table), counted by Keras on the real model."""
    from speechgen.model import SpeechRNN

    model = SpeechRNN(window=7, hop=3, units=[5, 4], batch_size=1, **kwargs)
    matmul_weights = sum(int(np.prod(w.shape)) for w in model.weights
                         if not w.path.endswith("bias") and "phone_encoding" not in w.path)
    assert matmul_weights < model.count_params()
    assert measure.lstm_flops(7, 3, [5, 4], extra) == 2 * matmul_weights


def test_synthetic_audio_is_what_scipy_writes_in_any_blocks(tmp_path):
    """The suite writes 20 minutes of audio a minute at a time: the bytes are those of
    scipy's writer for the whole signal, and the blocks join into the same samples."""
    from scipy.io import wavfile

    load_suite()
    from bench_data import NOISY, write_wav
    from fixtures import chord, chord_blocks

    whole = chord(1000, 7.5, seed=3, **NOISY)
    blocks = list(chord_blocks(1000, 7.5, seed=3, block_seconds=2, **NOISY))
    assert [len(b) for b in blocks] == [2000, 2000, 2000, 1500]
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    wavfile.write(tmp_path / "scipy.wav", 1000, np.round(np.clip(whole, -1, 1) * 32767).astype(np.int16))
    write_wav(tmp_path / "ours.wav", 7.5, seed=3, rate=1000)
    assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "scipy.wav").read_bytes()
    rate, back = wavfile.read(tmp_path / "ours.wav")
    assert rate == 1000 and len(back) == 7500 and 0.3 < np.std(back / 32767) < 0.4


def test_script_help_and_a_section_in_its_own_process(tmp_path):
    """As bin/bench runs it: from the repository root, each measurement a subprocess."""
    script = str(ROOT / "benchmarks" / "suite.py")
    done = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0 and "--smoke" in done.stdout, done.stderr
    bad = subprocess.run([sys.executable, script, "--only", "matmul,speed"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert bad.returncode == 2 and "unknown section(s) speed" in bad.stderr
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    done = subprocess.run([sys.executable, script, "--smoke", "--only", "matmul", "--json", str(out_json),
                           "--md", str(out_md)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads(out_json.read_text())["measurements"]
    assert list(m) == ["matmul/matmul"] and m["matmul/matmul"]["rss_scope"] == "own process"
    assert "### 1. Matrix multiply" in out_md.read_text()


def test_smoke_run_reports_every_section(tmp_path):
    suite = load_suite()
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    out_md.write_text("# hand-written title\n\nkept text\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\ntail\n")
    assert suite.main(["--smoke", "--inline", "--json", str(out_json), "--md", str(out_md)]) == 0
    report = json.loads(out_json.read_text())
    m = report["measurements"]
    hoisted = ("train/frame16k hoist_input", "train/frame16k hoist_input + jit_compile")
    assert list(m) == ["matmul/matmul", "train/frame16k", *hoisted, "train/sample-phones", "pipeline/frame16k",
                       "pipeline/sample-phones", "generation/sample-level", "generation/frame-level",
                       "precision/bf16 vs f32"]
    for key in m:
        assert m[key]["peak_rss_mib"] > 0 and m[key]["wall_s"] > 0
        assert len(m[key]["load_before"]) == 3
    assert m["matmul/matmul"]["result"]["ceiling_gflops_f32"] > 0
    assert all(r["gflops"] > 0 for r in m["matmul/matmul"]["result"]["rows"])
    for key in ("train/frame16k", "train/sample-phones", *hoisted):
        r = m[key]["result"]
        assert r["samples_per_s"] > 0 and r["achieved_gflops"] > 0 and r["final_loss"] > 0
    # The real hoist_input option: the rows measure it (and jit_compile where asked), and
    # its outputs equal the plain model's with the same weights.
    assert m["train/frame16k"]["result"]["variant"] == "default"
    assert m["train/frame16k"]["result"]["max_abs_diff_vs_plain"] is None
    assert [m[k]["result"]["variant"] for k in hoisted] == ["hoist_input", "hoist_input + jit_compile"]
    for key in hoisted:
        assert m[key]["result"]["hoist_input"] is True
        assert m[key]["result"]["max_abs_diff_vs_plain"] < 1e-5
    # Same start (the plain model's initial weights), same data: after 2 steps the loss
    # is the default row's to float rounding.
    np.testing.assert_allclose(m["train/frame16k hoist_input"]["result"]["losses"][:2],
                               m["train/frame16k"]["result"]["losses"][:2], rtol=1e-4)
    for key in ("pipeline/frame16k", "pipeline/sample-phones"):
        assert m[key]["result"]["samples_per_s"] > 0
    for key in ("generation/sample-level", "generation/frame-level"):
        rows = m[key]["result"]["rows"]
        assert [r["method"] for r in rows] == ["naive model.predict per step", "model(x) per step",
                                              "compiled (XLA while-loop)", "compiled (XLA while-loop)"]
        assert [r["streams"] for r in rows] == [1, 1, 1, 4]
        assert all(r["samples_per_s"] > 0 and r["vs_naive"] > 0 for r in rows)
    precision = m["precision/bf16 vs f32"]["result"]
    assert precision["none"]["final_loss"] > 0 and precision["mixed_bfloat16"]["final_loss"] > 0
    assert precision["within_tolerance"] and precision["loss_rel_diff"] <= precision["tolerance"] == 0.01
    assert {t["target"].split(",")[0] for t in report["targets"]} >= {
        "sample-level generation", "mixed_bfloat16 final loss vs float32 (relative difference"}
    assert all("pass" in t and t["measured"] > 0 or t.get("at_most") for t in report["targets"])
    doc = out_md.read_text()
    assert doc.startswith("# hand-written title\n\nkept text") and doc.rstrip().endswith("tail")
    assert "old" not in doc and "| target | measured |" in doc
    assert "frame16k hoist_input + jit_compile: outputs against the plain model" in doc
    assert "prototype" not in doc
