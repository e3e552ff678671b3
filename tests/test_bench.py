"""The benchmark suite runs end to end in its tiny smoke mode and reports every section.

No timing is asserted: the figures depend on the machine and its load; only that each
measurement ran and produced positive numbers (and the correctness figures it carries:
the bfloat16/fused generation prototypes against the compiled loop, mixed_bfloat16
against float32).
"""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_suite():
    spec = importlib.util.spec_from_file_location("bench_suite", ROOT / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_formula():
    suite = load_suite()
    # 3 x 600 LSTM on 16000-sample frames, Dense 600 -> 16000.
    expected = 2 * (16000 + 600) * 4 * 600 + 2 * 2 * (600 + 600) * 4 * 600 + 2 * 600 * 16000
    assert suite.lstm_flops(16000, 16000, [600, 600, 600]) == expected


def test_smoke_run_reports_every_section(tmp_path):
    suite = load_suite()
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    out_md.write_text("# hand-written title\n\nkept text\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\ntail\n")
    assert suite.main(["--smoke", "--inline", "--json", str(out_json), "--md", str(out_md)]) == 0
    report = json.loads(out_json.read_text())
    m = report["measurements"]
    for key in ("matmul/matmul", "train/frame16k", "train/frame16k hoisted input (prototype)",
                "train/frame16k hoisted input + jit_compile (prototype)", "train/sample-phones", "pipeline/frame16k",
                "pipeline/sample-phones", "generation/sample-level", "generation/frame-level",
                "precision/bf16 vs f32"):
        assert key in m, key
        assert m[key]["peak_rss_mib"] > 0 and m[key]["wall_s"] > 0
        assert len(m[key]["load_before"]) == 3
    assert m["matmul/matmul"]["result"]["ceiling_gflops_f32"] > 0
    assert all(r["gflops"] > 0 for r in m["matmul/matmul"]["result"]["rows"])
    for key in ("train/frame16k", "train/sample-phones", "train/frame16k hoisted input + jit_compile (prototype)"):
        r = m[key]["result"]
        assert r["samples_per_s"] > 0 and r["achieved_gflops"] > 0 and r["final_loss"] > 0
    # The hoisted-input prototype computes the same function as SpeechRNN.
    for key in ("train/frame16k hoisted input (prototype)", "train/frame16k hoisted input + jit_compile (prototype)"):
        assert m[key]["result"]["max_abs_diff_vs_speechrnn"] < 1e-5
    for key in ("pipeline/frame16k", "pipeline/sample-phones"):
        assert m[key]["result"]["samples_per_s"] > 0
    for key in ("generation/sample-level", "generation/frame-level"):
        rows = m[key]["result"]["rows"]
        assert rows[0]["method"].startswith("naive")
        assert all(r["samples_per_s"] > 0 and r["vs_naive"] > 0 for r in rows)
    # Prototypes: the fused float32 loop equals the compiled loop to float rounding;
    # the bfloat16 one stays within the stated tolerance for one step.
    for row in m["generation/sample-level"]["result"]["rows"]:
        if row["method"].startswith("fused"):
            assert row["max_abs_diff_1_step"] < 1e-5
        if row["method"].startswith("bfloat16"):
            assert row["max_abs_diff_1_step"] < suite.BF16_GEN_TOLERANCE
    precision = m["precision/bf16 vs f32"]["result"]
    assert precision["none"]["final_loss"] > 0 and precision["mixed_bfloat16"]["final_loss"] > 0
    assert precision["within_tolerance"]
    assert {t["target"].split(",")[0] for t in report["targets"]} >= {
        "sample-level generation", "mixed_bfloat16 final loss vs float32 (relative difference"}
    assert all("pass" in t and t["measured"] > 0 or t.get("at_most") for t in report["targets"])
    doc = out_md.read_text()
    assert doc.startswith("# hand-written title\n\nkept text") and doc.rstrip().endswith("tail")
    assert "old" not in doc and "| target | measured |" in doc
