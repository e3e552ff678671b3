"""The suite's report: targets (PASS/MISS against issue 6's and issue 14's figures) and the markdown
written between the ``bench:begin``/``bench:end`` markers of docs/benchmarks.md (the rest
of that page is hand-written and kept). The JSON report is the suite's own dict.
"""

from pathlib import Path

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# Targets of issue 6, then issue 14's (the recommended recipes).
# Issue 14 replaced two older targets: frame16k training at 70 % of the matmul rate
# (was 85 %), and many-stream generation as a share of the FLOP-rate ceiling (was an
# absolute 100x for 64 streams of the 3 x 128 model, above its own 17x ceiling).
TARGETS = {
    "frame16k_train_share": 0.70,
    "gen_rtf_1": 4.0,
    "gen_ceiling_share": 0.6,
    "pipeline_ratio": 10.0,
    "recipe_train_share": 0.5,
    "recipe_gen_rtf_1": 2.0,
    "recipe_gen_ceiling_share": 0.6,
    "recipe_ttq_ratio": 0.5,
}
RATE = 16000
LOOP = "compiled loop (one call)"
NAIVE = "naive model.predict per sample"


def recipe_generation(m):
    """The speech recipe's generation rows of all stream counts, in run order, each with
    the measurement it came from: ``[(row, measurement)]``."""
    return [(row, v) for k, v in m.items() if k.startswith("recipe-generation/") and "rows" in v["result"]
            for row in v["result"]["rows"]]


def summarise(report):
    """Targets: measured vs target, PASS/MISS, gap."""
    m = report["measurements"]
    targets = []

    def get(section, name):
        return m.get(f"{section}/{name}", {}).get("result")

    mm = get("matmul", "matmul")
    f16 = get("train", "frame16k")
    # The ceiling: the best float32 rate seen in this run (section 1, or re-measured
    # beside each frame16k or recipe training measurement and the recipe's generation).
    here = [v["result"].get("matmul_gflops_here") or 0 for k, v in m.items()
            if k.startswith(("train/", "recipe-train/", "recipe-generation/"))]
    if mm or any(here):
        report["ceiling_gflops_f32"] = max(([mm["ceiling_gflops_f32"]] if mm else []) + here)
    ceiling = report.get("ceiling_gflops_f32")
    if ceiling and f16:
        ceiling = report["ceiling_gflops_f32"]
        # The target is on frame16k as a user trains it: hoist_input auto hoists the first
        # LSTM's input projection where TensorFlow sees no GPU (as here); the plain row is
        # the write-up's layer, kept for comparison.
        default = get("train", "frame16k hoist_input") or f16
        best = max((r for k, v in m.items() if k.startswith("train/frame16k") for r in [v["result"]]),
                   key=lambda r: r["achieved_gflops"])
        targets.append({"target": "frame16k training (default: hoist_input auto, on without a GPU) FLOP/s "
                                  "share of the float32 matmul rate",
                        "measured": default["achieved_gflops"] / ceiling, "want": TARGETS["frame16k_train_share"],
                        "unit": "share",
                        "note": f"plain LSTM {f16['achieved_gflops'] / ceiling:.0%}; best variant: "
                                f"{best['variant']} {best['achieved_gflops'] / ceiling:.0%}"})
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
        if ceiling:
            cap = report["ceiling_gflops_f32"] * 1e9 / gen["flops_per_sample"] / gen["rate"]
            report["generation_ceiling_rtf"] = cap
            targets.append({"target": f"sample-level generation, {many['streams']} streams, share of the FLOP-rate "
                                      "ceiling", "measured": many["real_time_factor"] / cap,
                            "want": TARGETS["gen_ceiling_share"], "unit": "share",
                            "note": f"{many['real_time_factor']:.1f}x of a {cap:.1f}x ceiling; best: "
                                    f"{bestn['method']} {bestn['real_time_factor']:.1f}x"})
    for preset in ("frame16k", "sample-phones"):
        tr, pl = get("train", preset), get("pipeline", preset)
        if tr and pl:
            targets.append({"target": f"{preset} input pipeline alone / training consumption",
                            "measured": pl["samples_per_s"] / tr["samples_per_s"],
                            "want": TARGETS["pipeline_ratio"], "unit": "x", "note": ""})
    for preset in ("speech", "music"):
        tr = get("recipe-train", preset)
        if tr and ceiling:
            rows = [v["result"] for k, v in m.items() if k.startswith(f"recipe-train/{preset}")]
            best = max(rows, key=lambda r: r["achieved_gflops"])
            targets.append({"target": f"{preset} recipe training FLOP/s share of the float32 matmul rate",
                            "measured": tr["achieved_gflops"] / ceiling, "want": TARGETS["recipe_train_share"],
                            "unit": "share",
                            "note": f"best variant: {best['variant']} {best['achieved_gflops'] / ceiling:.0%}"})
    rows = recipe_generation(m)
    if rows:
        fps = rows[0][1]["result"]["flops_per_sample"]
        if ceiling:
            report["recipe_generation_ceiling_rtf"] = ceiling * 1e9 / fps / RATE
        one = [r for r, _ in rows if r["streams"] == 1]
        loop1 = next((r for r in one if r["method"] == LOOP), None)
        if loop1:
            best = max(one, key=lambda r: r["real_time_factor"])
            targets.append({"target": "speech recipe generation, 1 stream, real-time factor",
                            "measured": loop1["real_time_factor"], "want": TARGETS["recipe_gen_rtf_1"], "unit": "x",
                            "note": f"best: {best['method']} {best['real_time_factor']:.2f}x"})
        most = max(r["streams"] for r, _ in rows)
        loopn = next((r for r, _ in rows if r["streams"] == most and r["method"] == LOOP), None)
        if loopn and most > 1 and ceiling:
            cap = report["recipe_generation_ceiling_rtf"]
            targets.append({"target": f"speech recipe generation, {most} streams, share of the FLOP-rate ceiling",
                            "measured": loopn["real_time_factor"] / cap, "want": TARGETS["recipe_gen_ceiling_share"],
                            "unit": "share", "note": f"{loopn['real_time_factor']:.1f}x of a {cap:.1f}x ceiling"})
    ttq = [v["result"] for k, v in m.items() if k.startswith("time-to-quality/")]
    if len(ttq) == 2 and all(r.get("reached") for r in ttq):
        now, former = ttq
        targets.append({"target": "speech recipe time to quality / its former settings' (at most)",
                        "measured": now["seconds"] / former["seconds"], "want": TARGETS["recipe_ttq_ratio"],
                        "unit": "rel", "at_most": True,
                        "note": f"{now['seconds']:.1f} s against {former['seconds']:.1f} s; "
                                f"batches {now['batches']} against {former['batches']}"})
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
    """A measured or wanted figure in its unit: a share, a relative difference or a factor."""
    if unit == "share":
        return f"{x:.0%}"
    if unit == "rel":
        return f"{x:.3f}"
    return f"{x:,.2f}x" if x < 100 else f"{x:,.0f}x"


def _training_cells(r, ceiling):
    """A training row's shared cells: the step time ("median (min-max)", s) and the
    three GFLOP/s cells joined ("achieved | share of the ceiling | matmul just before")."""
    step = f"{r['step_s']:.3f} ({min(r['step_times_s']):.3f}-{max(r['step_times_s']):.3f})"
    share = f"{r['achieved_gflops'] / ceiling:.0%}" if ceiling else ""
    here = format(r["matmul_gflops_here"], ",.0f") if r.get("matmul_gflops_here") else "-"
    return step, f"{r['achieved_gflops']:,.1f} | {share} | {here}"


def markdown(report):
    """The generated part of docs/benchmarks.md: machine, targets, one table per section."""
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
                "streams: many-stream targets are shares of it (issue 14)."]

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
            step, gflops = _training_cells(r, ceiling)
            out.append(f"| {name} | {step} | {r['steps_per_s']:,.0f} | {r['samples_per_s']:,.0f} | {gflops} | "
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
            if v["result"].get("max_abs_diff_vs_plain") is not None:
                out.append(f"\n{name}: outputs against the plain model (`hoist_input: false`) with the same "
                           f"weights, max abs diff {v['result']['max_abs_diff_vs_plain']:.1e} (one batch, float32).")
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
                "| model | method | streams | samples/s | real-time factor | vs naive | peak RSS (MiB) "
                "| load before / after |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in gens:
            r = v["result"]
            rss = f"{v['peak_rss_mib']:,.0f}"
            label = f"{name}: {len(r['units'])} x {r['units'][0]} LSTM, window {r['window']}, hop {r['hop']}"
            for i, row in enumerate(r["rows"]):
                out.append(f"| {label if i == 0 else ''} | {row['method']} | {row['streams']} | "
                           f"{row['samples_per_s']:,.0f} | {row['real_time_factor']:,.2f}x | {row['vs_naive']:,.0f}x | "
                           f"{rss if i == 0 else ''} | "
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
    out += recipe_markdown(report, loads)
    return "\n".join(out) + "\n"


def _mib(x):
    return f"{x:,.0f}" if x else "-"


def recipe_markdown(report, loads):
    """Section 6: the recommended recipes (issue 14): training, time to quality, generation."""
    m, ceiling = report["measurements"], report.get("ceiling_gflops_f32")
    trains = [(k.split("/", 1)[1], v) for k, v in m.items() if k.startswith("recipe-train/")]
    ttq = [(k.split("/", 1)[1], v) for k, v in m.items() if k.startswith("time-to-quality/")]
    gens = recipe_generation(m)
    if not (trains or ttq or gens):
        return []
    out = ["", "### 6. The recommended recipes (configs/speech.yaml, configs/music.yaml)", "",
           "FLOPs per sample, forward: every Dense and LSTM matmul of the built model at 2 x in x out "
           "(an LSTM: 2 x (in + units) x 4 units), the frame tier and the upsampling Dense once per hop samples, "
           "the predictor and the output layer once per sample; training counts 3 x forward "
           "(`flops_per_sample` in benchmarks/bench_measure.py)."]
    if trains:
        out += ["", "#### Training throughput (model.fit on the tf.data pipeline, synthetic audio)", "",
                "| recipe / variant | step (s), median (min-max) | samples/s | forward FLOP per sample | GFLOP/s "
                "| share of matmul ceiling | matmul GFLOP/s just before | first step (s) | final loss "
                "| peak RSS (MiB) | load before / after |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in trains:
            r = v["result"]
            step, gflops = _training_cells(r, ceiling)
            out.append(f"| {name} | {step} | {r['samples_per_s']:,.0f} | {r['flops_per_sample_forward']:,.0f} | "
                       f"{gflops} | {r['first_step_s']:.1f} | "
                       f"{r['final_loss']:.4g} | {v['peak_rss_mib']:,.0f} | {loads(v)} |")
        first = trains[0][1]["result"]
        out.append(f"\nBatch {first['batch_size']} x {first['seq_len']} steps x {first['hop']} samples, "
                   f"{first['timed_steps']} timed steps after {first['warm_steps']} warm-up steps; "
                   f"final loss: cross-entropy in nats per sample.")
        for name, v in trains:
            if v["result"].get("max_abs_diff_vs_plain") is not None:
                out.append(f"\n{name}: logits against the plain model (`hoist_input: false`) with the same weights, "
                           f"max abs diff {v['result']['max_abs_diff_vs_plain']:.1e} (one batch, float32).")
    for name, v in ttq:
        r = v["result"]
        out += ["", f"#### Time to quality: {name}", ""]
        if "skipped" in r:
            out.append(f"Not measured: {r['skipped']}.")
            continue
        gate = (f"gate {r['gate_bits']:.3f} bits/sample = LPC baseline {r['lpc_bits']:.3f} "
                f"- {r['gate_below_lpc']} (validation split, speechgen's `CategoricalBaselines`; "
                f"histogram {r['histogram_bits']:.3f}, untrained model {r['untrained_bits']:.3f})")
        scored = (f"{r['valid_batches']} of {r['valid_batches_in_split']} validation batches "
                  f"({r['valid_samples'] / RATE:.1f} s of speech)")
        if r["reached"]:
            before = r.get("check_before")
            bracket = (f"; the check before, at batch {before['batches']} ({before['train_s']:.1f} s), "
                       f"scored {before['valid_bits']:.3f}" if before else "")
            out.append(f"**{r['seconds']:.1f} s** of training (batch {r['batches']}, "
                       f"{r['batches'] * r['samples_per_batch'] / 1e6:.2f} M samples) until the validation NLL "
                       f"first reached the {gate}: {r['bits_reached']:.3f} bits/sample{bracket}.")
        else:
            last = r["last_check"]
            tail = (f"; the last check, at batch {last['batches']} ({last['train_s']:.1f} s), scored "
                    f"{last['valid_bits']:.3f} bits/sample" if last else "")
            out.append(f"**Not reached in {r['time_limit_s']:.0f} s** of training: the {gate}{tail}.")
        out.append(f"\nThe weights are snapshotted every {r['check_every']} batches and the newest scored on {scored} "
                   f"unless the scoring so far took over {r['max_check_share']:.0%} of the training time; once one "
                   f"meets the gate, the snapshots since the previous scored one are scored in order "
                   f"({len(r['checks'])} scored, {r['check_s']:.1f} s, not counted); {r['batches_per_epoch']} batches of {r['samples_per_batch']:,} samples "
                   f"per epoch; {r['parameters']:,} parameters, jit_compile {r['jit_compile']}, hoist_input "
                   f"{r['hoist_input']}. Load {r['load_before_fit'][0]:.2f} when training started, "
                   f"{r['load_after_fit'][0]:.2f} at its end (1-minute average); peak RSS "
                   f"{v['peak_rss_mib']:,.0f} MiB; set-up (corpus, baselines) {r['setup_s']:.0f} s.")
    if gens:
        cap = report.get("recipe_generation_ceiling_rtf")
        first = gens[0][1]["result"]
        naive = next((r for r, _ in gens if r["method"] == NAIVE), None)
        out += ["", "#### Generation of the speech recipe (untrained weights; speed does not depend on them)", "",
                "| streams | method | samples/s | real-time factor | vs naive predict loop | share of FLOP-rate ceiling "
                "| peak RSS (MiB) | load before / after |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row, _ in gens:
            vs = f"{row['samples_per_s'] / naive['samples_per_s']:,.0f}x" if naive else ""
            share = f"{row['real_time_factor'] / cap:.0%}" if cap else ""
            out.append(f"| {row['streams']} | {row['method']} | {row['samples_per_s']:,.0f} | "
                       f"{row['real_time_factor']:,.2f}x | {vs} | {share} | {_mib(row.get('peak_rss_mib'))} | "
                       f"{row['load_before'][0]:.2f} / {row['load_after'][0]:.2f} |")
        if cap:
            out.append(f"\nFLOP-rate ceiling: {ceiling:,.1f} GFLOP/s / {first['flops_per_sample']:,.0f} FLOP per "
                       f"sample / 16 kHz = **{cap:.1f}x** real time in aggregate, however many streams (the "
                       f"generator's lookup tables{' (on here)' if first.get('lookup_tables') else ''} replace the "
                       "predictor's first Dense, so it does fewer FLOPs than counted).")
        checks = "; ".join(f"{v['result']['streams']} streams: {v['result']['per_frame_vs_loop_max_abs_diff']:.1e}"
                           for k, v in m.items() if k.startswith("recipe-generation/") and "rows" in v["result"])
        out.append(f"\nPer-frame calls against the one-call loop, same seed and prime (max abs diff of the samples): "
                   f"{checks}.")
        for row, _ in gens:
            if "vs_compiled_max_abs_diff" in row:
                out.append(f"{row['method']}: {row['steps']} steps, against the compiled loop's first steps: max abs "
                           f"diff {row['vs_compiled_max_abs_diff']:.1e}, {row['vs_compiled_equal_share']:.0%} of the "
                           "samples equal.")
        out.append("Per-row peak RSS: the process's VmHWM, reset before the row (so it includes what earlier rows "
                   "of the same process keep); each stream count runs in its own process. Timed rows: the "
                   "fastest of the rounds, run round robin after a compiling run.")
    return out


DOC_TEMPLATE = """# Benchmarks

`bin/bench` (benchmarks/suite.py) regenerates the part between the markers and
`docs/benchmarks.json`; the rest of this page is written by hand.

{begin}
{end}
"""


def write_markdown(path, text):
    """Put ``text`` between the markers of ``path`` (made from a template if absent), keeping the rest."""
    path = Path(path)
    doc = path.read_text() if path.exists() else DOC_TEMPLATE.format(begin=BEGIN, end=END)
    if BEGIN not in doc or END not in doc:
        doc = doc.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")

