"""Teacher-forced evaluation per split, next to baselines on the same targets.

For every split the model reads the true previous window at each step (teacher
forcing); state carries along each stream and is zeroed where a stream (utterance)
starts. Baselines are scored on exactly the same targets:

- ``zero``: always predict 0 in normalised units: the training mean (``meanrange``
  normalisation) or the middle of the training range (``minmax``);
- ``persistence``: the next ``hop`` samples equal the last ``hop`` samples of the
  input window (frame-level: next frame = current frame; sample-level: x[t] = x[t-1]);
- ``lpc`` (sample-level models, ``hop == 1``): the least-squares linear predictor of
  order ``window`` fitted on the training split, the classic speech-coding predictor.

MSEs are in normalised units (see :class:`speechgen.corpus.Normaliser`). The
prediction gain, ``10 log10(variance of the targets / MSE)`` in dB, compares models
across corpora: 0 dB is no better than predicting the mean.
"""

import numpy as np

from .data.corpus import SPLITS, Normaliser
from .measures.baselines import PREDICTORS, _fits, fit_lpc


def evaluate_model(model, corpus, splits=SPLITS):
    """Per-split MSE and prediction gain of ``model`` and of the baselines.

    Args:
        model: a :class:`speechgen.model.SpeechRNN`; its batch size sets the number of
            rows (a split too short for them is scored with one row).
        corpus: a :class:`speechgen.corpus.Corpus`.
    Returns:
        dict split -> {"model", "zero", "persistence", "lpc": MSE (lpc None when
        hop > 1), "gain_db": {same keys: dB}, "variance", "steps", "seconds",
        "coverage", "cold" (share of the scored chunks that start inside an utterance
        from a zeroed state: :attr:`speechgen.data.pipeline.Schedule.cold`)}, or None
        for a split that cannot be scored.
    """
    import tensorflow as tf

    from .data.phones import model_phones
    from .data.framing import Framing
    from .data.pipeline import split_batches

    config = model.train_config or {}
    normaliser = Normaliser.from_dict(model.normaliser)
    framing = Framing.of(model, config.get("seq_len", 50))
    phones = model_phones(model)
    lpc = None
    if model.hop == 1 and corpus.splits.get("train"):
        lpc = fit_lpc(corpus.splits["train"], normaliser, model.window)
    categorical = model.head.kind == "categorical"
    bits_baselines = None
    if categorical and corpus.splits.get("train"):
        from .measures.baselines import CategoricalBaselines

        bits_baselines = CategoricalBaselines(
            corpus.splits["train"], normaliser, model.head.levels, model.head.quantisation
        )
    runners = {model.batch_size: model}
    results = {}
    for split in splits:
        if not corpus.splits.get(split):
            results[split] = None
            continue
        joined = config.get("utterances") == "joined"
        lengths = [len(p) for p in corpus.splits[split]]
        lengths = [sum(lengths)] if joined else lengths
        # Only "too short for this many rows" falls back to one row; any other problem
        # (labels, phones) is the user's to hear about.
        batch = next((b for b in dict.fromkeys([model.batch_size, 1]) if _fits(lengths, framing, b)), None)
        if batch is None:
            results[split] = None
            continue
        # Scored the way the model was trained: utterances apart, or joined.
        dataset, schedule = split_batches(corpus, split, normaliser, framing, batch, phones,
                                          joined=joined)
        if batch not in runners:
            runners[batch] = model.with_batch_size(batch)
        runner = runners[batch]
        predict = tf.function(lambda x, m=runner: _score(m, x))
        sums = dict.fromkeys(PREDICTORS, 0.0)
        nats = 0.0
        total = total_sq = count = 0.0
        runner.reset_rnn_states()
        for k, (inputs, targets) in enumerate(dataset):
            rows = schedule.rows_to_reset(k)
            if rows is not None:
                runner.reset_rnn_rows(rows)
            frames = (inputs[0] if phones else inputs).numpy().astype(np.float64)[..., : model.window]
            if categorical:
                # Score the decoded classes: what a categorical model can produce.
                targets = model.head.decode(model.head.targets(targets.numpy()))
            t = np.asarray(targets, np.float64)
            point, nll = predict((inputs, tf.constant(t, tf.float32)))
            sums["model"] += float(np.sum((point.numpy() - t) ** 2))
            nats += float(nll)
            sums["zero"] += float(np.sum(t**2))
            sums["persistence"] += float(np.sum((frames[..., -model.hop :] - t) ** 2))
            if lpc is not None:
                sums["lpc"] += float(np.sum((frames @ lpc - t[..., 0]) ** 2))
            total += float(t.sum())
            total_sq += float(np.sum(t**2))
            count += t.size
        mse = {k: v / count for k, v in sums.items()}
        bits = None
        if categorical:
            bits = {"model": nats / count / np.log(2.0), "histogram": None, "lpc": None}
            if bits_baselines is not None:
                bits.update(bits_baselines.score(corpus.splits[split]) or {})
        if lpc is None:
            mse["lpc"] = None
        variance = total_sq / count - (total / count) ** 2
        results[split] = {
            **mse,
            "gain_db": {
                k: (10 * np.log10(variance / v) if v else None) if v is not None else None
                for k, v in mse.items()
            },
            "variance": variance,
            "steps": int(count // model.hop),
            "seconds": count / model.sample_rate,
            "coverage": schedule.coverage,
            "cold": schedule.cold,
            "bits": bits,
        }
    return results


def _score(model, data):
    """A batch's point predictions ``(B, T, hop)`` and, for categorical heads, the summed
    negative log-likelihood (nats) of the true samples' classes (0 for MSE heads)."""
    import keras

    inputs, samples = data
    outputs = model(inputs, training=False)
    point = model.head.point(outputs)
    if model.head.kind != "categorical":
        return point, keras.ops.zeros(())
    classes = model.head.targets(samples, ops=keras.ops)
    nll = keras.losses.sparse_categorical_crossentropy(classes, outputs, from_logits=True)
    return point, keras.ops.sum(nll)


def format_bits_table(results):
    """A markdown table of a categorical model's bits per sample next to the histogram
    and LPC baselines (lower is better), or "" for MSE models."""
    if not any(r and r.get("bits") for r in results.values()):
        return ""
    lines = [
        "| split | model bits/sample | histogram bits | LPC bits | model - LPC |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split, r in results.items():
        b = (r or {}).get("bits")
        if not b:
            lines.append(f"| {split} | - | - | - | not scored |")
            continue
        cell = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        gap = None if b["lpc"] is None else b["model"] - b["lpc"]
        lines.append(f"| {split} | {cell(b['model'])} | {cell(b['histogram'])} | {cell(b['lpc'])} | "
                     + ("-" if gap is None else f"{gap:+.3f}") + " |")
    return "\n".join(lines)


def format_table(results):
    """A markdown table of :func:`evaluate_model` results (MSE, and gain in dB), and for
    categorical models the bits-per-sample table above it."""
    has_lpc = any(r and r.get("lpc") is not None for r in results.values())
    names = ["model", "zero", "persistence"] + (["lpc"] if has_lpc else [])
    head = " | ".join(f"{n} MSE (gain dB)" for n in names)
    lines = [
        f"| split | {head} | model / best baseline | seconds |",
        "| --- |" + " --- |" * (len(names) + 2),
    ]
    for split, r in results.items():
        if r is None:
            lines.append(f"| {split} |" + " - |" * len(names) + " not scored | - |")
            continue
        cells = []
        for n in names:
            gain = r["gain_db"][n]
            cells.append(f"{r[n]:.6f} ({gain:+.1f})" if gain is not None else f"{r[n]:.6f}")
        best = min(r[n] for n in names[1:])
        ratio = r["model"] / best if best else float("inf")
        lines.append(f"| {split} | " + " | ".join(cells) + f" | {ratio:.3f} | {r['seconds']:.1f} |")
    bits = format_bits_table(results)
    return (bits + "\n\n" if bits else "") + "\n".join(lines)
