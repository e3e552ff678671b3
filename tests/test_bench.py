"""The benchmark suite: what it counts, the audio it writes, and a tiny smoke run of every section.

No timing is asserted: the figures depend on the machine and its load; only that each
measurement ran and produced positive numbers, and the correctness figures it carries
(the ``hoist_input`` model against the plain one with the same weights, mixed_bfloat16
against float32; for the recipes, one compiled call per frame and the naive per-sample
Keras loops against the one-call compiled loop with the same seed, and the
time-to-quality gate against speechgen's LPC baseline) within their tolerances.
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
    ({"phones": ["a", "b", "c"], "phone_context": 4, "phone_embedding": 2}, 22),  # and 16 position buckets
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


TIERED = {"window": 4, "hop": 4, "units": [3], "predictor_units": [5, 2], "predictor_window": 2, "input_embedding": 3,
          "levels": 6, "output": "categorical"}


@pytest.mark.parametrize("kwargs, layers, per_sample", [
    # Frame tier per hop = 4 samples: LSTM 4 inputs -> 3 units, 8 x ... = 2 x (4 + 3) x 12 = 168;
    # upsample Dense 3 -> 4 x 5 = 20: 120. Per sample: predictor_input on 2 samples x 3
    # embedding dims -> 5: 60; predictor_1 5 -> 2: 20; next_samples 2 -> 6 levels: 24.
    # 288 / 4 + 104 = 176.
    ({}, [("lstm_0", 168, 4), ("upsample", 120, 4), ("predictor_input", 60, 1), ("predictor_1", 20, 1),
          ("next_samples", 24, 1)], 176),
    # hoist_input splits the first LSTM (window 8: 2 x (8 + 3) x 12 = 264) into its input
    # Dense 8 -> 12 (192) and the recurrent kernel 3 -> 12 (72): the same total.
    ({"window": 8, "hoist_input": True}, [("lstm_0_input", 192, 4), ("lstm_0", 72, 4), ("upsample", 120, 4),
                                          ("predictor_input", 60, 1), ("predictor_1", 20, 1),
                                          ("next_samples", 24, 1)], 200),
    # An upper tier of 2 units on 8-sample frames (once per 8 samples): LSTM 2 x (8 + 2) x 8
    # = 160, top_upsample 2 -> 2 steps x 3 = 6: 24; the frame tier then reads 8 + 3 inputs:
    # 2 x (11 + 3) x 12 = 336. 184 / 8 + 456 / 4 + 104 = 23 + 114 + 104 = 241.
    ({"window": 8, "top_units": [2], "top_frame": 8},
     [("top_lstm_0", 160, 8), ("top_upsample", 24, 8), ("lstm_0", 336, 4), ("upsample", 120, 4),
      ("predictor_input", 60, 1), ("predictor_1", 20, 1), ("next_samples", 24, 1)], 241),
    # Untiered: lstm_flops' hand counts above, per step of hop samples.
    ({"window": 3, "hop": 5, "units": [2], "predictor_units": [], "input_embedding": 0, "output": "mse"},
     [("lstm_0", 80, 5), ("next_samples", 20, 5)], 100 / 5),
])
def test_flops_per_sample_of_a_tiny_tiered_model_counted_by_hand(measure, kwargs, layers, per_sample):
    from speechgen.model import SpeechRNN

    model = SpeechRNN(**{**TIERED, **kwargs})
    assert measure.layer_flops(model) == layers
    assert measure.flops_per_sample(model) == per_sample


def test_flops_per_sample_of_the_recipes(measure):
    """The figures docs/benchmarks.md quotes. Speech: LSTM 2 x (16 + 256) x 1024 = 557,056
    and upsample 2 x 256 x 4096 = 2,097,152 per 16 samples (165,888 per sample), then three
    256 x 256 layers per sample (the predictor's input on 16 x 16 embedded samples, its
    second layer, the 256-level output: 3 x 131,072). Music: a 512-unit frame tier,
    2 x (16 + 512) x 2048 = 2,162,688 and 2 x 512 x 4096 = 4,194,304 per 16 samples."""
    suite = load_suite()
    from bench_recipes import recipe_config, recipe_model

    assert measure.flops_per_sample(recipe_model(recipe_config("speech"))) == 559_104
    assert measure.flops_per_sample(recipe_model(recipe_config("music"))) == 790_528
    # The smoke run's tiny recipe: LSTM 2 x (16 + 8) x 32 = 1,536 and upsample 2 x 8 x 128 =
    # 2,048 per 16 samples, predictor 2 x 64 x 8 = 1,024, 2 x 8 x 8 = 128, output 2 x 8 x 256 = 4,096.
    assert measure.flops_per_sample(recipe_model(recipe_config("speech", suite.TINY_RECIPE))) == 5_472


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
    assert all(name in done.stdout for name in ("recipe-train", "time-", "recipe-generation"))
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
    recipes = ["recipe-train/speech", "recipe-train/speech hoist_input + jit_compile", "recipe-train/music",
               "time-to-quality/speech on prompts-real", f"time-to-quality/{suite.FORMER_SPEECH_NAME}",
               "recipe-generation/speech, 1 stream",
               "recipe-generation/speech, 4 streams"]
    assert list(m) == ["matmul/matmul", "train/frame16k", *hoisted, "train/sample-phones", "pipeline/frame16k",
                       "pipeline/sample-phones", "generation/sample-level", "generation/frame-level",
                       "precision/bf16 vs f32", *recipes]
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
    check_recipes(report)
    doc = out_md.read_text()
    assert "### 6. The recommended recipes" in doc and "#### Time to quality: speech on prompts-real" in doc
    assert "| 4 | compiled call per frame |" in doc
    assert doc.startswith("# hand-written title\n\nkept text") and doc.rstrip().endswith("tail")
    assert "old" not in doc and "| target | measured |" in doc
    assert "frame16k hoist_input + jit_compile: outputs against the plain model" in doc
    assert "prototype" not in doc


def check_recipes(report):
    """Issue 14's smoke rows: what they counted, and their correctness figures."""
    m = report["measurements"]
    speech, hoisted, music = (m[f"recipe-train/{k}"]["result"] for k in
                              ("speech", "speech hoist_input + jit_compile", "music"))
    assert speech["head"] == "categorical (256 mulaw levels)" and speech["predictor_units"] == [8, 8]
    # The tiny recipes' FLOPs, read from the built models (hand counts in the tests above).
    assert (speech["flops_per_sample_forward"], music["flops_per_sample_forward"]) == (5_472, 5_608)
    for r in (speech, hoisted, music):
        assert r["samples_per_s"] > 0 and r["achieved_gflops"] > 0
        # Cross-entropy of an untrained 256-level model: about ln 256 nats.
        assert abs(r["final_loss"] - np.log(256)) < 0.5
    assert hoisted["variant"] == "hoist_input + jit_compile" and hoisted["max_abs_diff_vs_plain"] < 1e-5
    np.testing.assert_allclose(hoisted["losses"][:2], speech["losses"][:2], rtol=1e-4)
    targets = {t["target"]: t for t in report["targets"]}
    assert targets["speech recipe training FLOP/s share of the float32 matmul rate"]["want"] == 0.5
    assert targets["music recipe training FLOP/s share of the float32 matmul rate"]["measured"] > 0

    ttq = m["time-to-quality/speech on prompts-real"]["result"]
    former = m[f"time-to-quality/{load_suite().FORMER_SPEECH_NAME}"]["result"]
    if not (ROOT.parent / "shared" / "corpora" / "prompts-real").exists():
        assert "absent" in ttq["skipped"] and "not measured" in ttq["skipped"]
        assert "absent" in former["skipped"]
    else:
        check_time_to_quality(ttq, 0.3)
        check_time_to_quality(former, 0.3)

    one, four = (m[f"recipe-generation/speech, {k}"]["result"] for k in ("1 stream", "4 streams"))
    assert [r["method"] for r in one["rows"]] == ["naive model.predict per sample", "naive model(x) per sample",
                                                 "compiled loop (one call)", "compiled call per frame"]
    assert [r["method"] for r in four["rows"]] == ["compiled loop (one call)", "compiled call per frame"]
    for g, n, steps in ((one, 1, 8), (four, 4, 4)):
        assert g["flops_per_sample"] == 5_472 and g["generated_shape"] == [n, steps * 16]
        assert g["generated_finite"] and g["generated_in_range"]
        # One compiled call per frame draws exactly what the one-call loop draws.
        assert g["per_frame_vs_loop_max_abs_diff"] <= 1e-6
        for r in g["rows"]:
            assert r["streams"] == n and r["samples_per_s"] > 0 and r["peak_rss_mib"] > 0
            assert len(r["load_before"]) == len(r["load_after"]) == 3
    # The naive per-sample loops (the Keras model from Python) draw the compiled loop's samples.
    for r in one["rows"][:2]:
        assert r["steps"] == 2 and r["vs_compiled_equal_share"] == 1.0 and r["vs_compiled_max_abs_diff"] < 1e-5
    assert report["recipe_generation_ceiling_rtf"] == pytest.approx(
        report["ceiling_gflops_f32"] * 1e9 / 5_472 / 16000)
    assert targets["speech recipe generation, 4 streams, share of the FLOP-rate ceiling"]["want"] == 0.6
    assert targets["speech recipe generation, 1 stream, real-time factor"]["measured"] == pytest.approx(
        one["rows"][2]["real_time_factor"])


def check_time_to_quality(r, below):
    assert r["gate_bits"] == pytest.approx(r["lpc_bits"] - below)
    assert 0 < r["lpc_bits"] < r["histogram_bits"] < 8.5
    # An untrained 256-level model spreads its mass: about 8 bits per sample.
    assert 7 < r["untrained_bits"] < 9
    assert r["checks"] and all(np.isfinite(c["valid_bits"]) for c in r["checks"])
    assert [c["batches"] for c in r["checks"]] == sorted({c["batches"] for c in r["checks"]})
    assert all(c["batches"] % r["check_every"] == 0 or c["train_s"] >= r["time_limit_s"] for c in r["checks"])
    first = next((c for c in r["checks"] if c["valid_bits"] <= r["gate_bits"]), None)
    assert r["reached"] == (first is not None)
    if r["reached"]:
        # The first check at or below the gate; after it at most the check that found it.
        at = r["checks"].index(first)
        assert len(r["checks"]) - at <= 2 and r["checks"][-1]["valid_bits"] <= r["gate_bits"]
        assert r["bits_reached"] == first["valid_bits"] and r["check_before"] == (r["checks"][at - 1] if at else None)
        assert r["seconds"] == first["train_s"] > 0 and r["batches"] == first["batches"]
    else:
        assert r["seconds"] is None and r["last_check"]["train_s"] >= r["time_limit_s"]


def test_time_to_quality_on_a_synthetic_corpus(tmp_path, measure):
    """The gate logic without the shared corpora: a gate far above the LPC baseline is
    met at the first check; an absent corpus is skipped with its reason."""
    suite = load_suite()
    from bench_data import write_phone_folder
    from bench_recipes import bench_time_to_quality

    folder = write_phone_folder(tmp_path / "speech", 10, 1.0)
    p = {"preset": "speech", "corpus": str(folder), "sets": {**suite.TINY_RECIPE, "batch_size": 2, "seq_len": 4},
         "check_every": 3, "valid_batches": 0, "time_limit": 60, "gate_below_lpc": -20.0,
         "baseline_samples": 50_000}
    r = bench_time_to_quality(p)
    check_time_to_quality(r, -20.0)
    assert r["reached"] and r["batches"] == 3 and len(r["checks"]) == 1 and r["check_before"] is None
    assert r["valid_batches"] == r["valid_batches_in_split"] > 0
    assert r["valid_samples"] == r["valid_batches"] * 2 * 4 * 16
    gone = bench_time_to_quality({**p, "corpus": str(tmp_path / "nowhere")})
    assert set(gone) == {"skipped"} and "nowhere is absent" in gone["skipped"]


def test_time_to_quality_target_is_the_ratio_against_the_former_settings():
    """The "halve it" target compares the two time-to-quality rows of one run, and is
    left out unless both reached the gate."""
    load_suite()
    import bench_report

    def ttq(seconds, batches):
        return {"result": {"reached": seconds is not None, "seconds": seconds, "batches": batches}}

    def targets(now, former):
        report = {"measurements": {"time-to-quality/speech": now, "time-to-quality/speech, former": former}}
        bench_report.summarise(report)
        return [t for t in report["targets"] if t["target"].startswith("speech recipe time to quality")]

    (t,) = targets(ttq(18.0, 70), ttq(40.0, 150))
    assert t["measured"] == pytest.approx(0.45) and t["want"] == 0.5 and t["pass"] and "70 against 150" in t["note"]
    (t,) = targets(ttq(30.0, 120), ttq(40.0, 150))
    assert not t["pass"] and t["gap"] == pytest.approx(0.25)
    assert targets(ttq(None, None), ttq(40.0, 150)) == []
