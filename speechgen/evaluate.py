"""Teacher-forced evaluation per split, next to baselines on the same targets.

For every split the model reads the true previous window at each step (teacher
forcing), its state carried along each stream and reset at the start of the split.
Baselines use exactly the same targets:

- ``zero``: always predict 0, i.e. the training mean in normalised units;
- ``persistence``: the next ``hop`` samples equal the last ``hop`` samples of the
  input window (frame-level: next frame = current frame; sample-level: x[t] = x[t-1]).

All MSEs are in normalised units (see :class:`speechgen.corpus.Normaliser`).
"""

import numpy as np

from .corpus import SPLITS, Normaliser
from .pipeline import StreamLayout, tbptt_dataset


def evaluate_model(model, corpus, seq_len=None, splits=SPLITS):
    """Per-split MSE of ``model`` and of the baselines.

    Args:
        model: a :class:`speechgen.model.SpeechRNN` (its batch size sets the number of
            streams).
        corpus: a :class:`speechgen.corpus.Corpus`.
        seq_len: steps per call (default: the training seq_len).
    Returns:
        dict split -> {"model", "zero", "persistence": MSE, "steps": steps scored,
        "seconds": audio seconds scored}; a split too short for the model's batch of
        streams maps to None.
    """
    normaliser = Normaliser.from_dict(model.normaliser)
    seq_len = seq_len or (model.train_config or {}).get("seq_len", 50)
    # A split too short for the model's streams is scored by one stream instead.
    candidates = [[model.batch_size, model, None]]
    if model.batch_size > 1:
        candidates.append([1, None, None])  # the batch-1 copy, made only if needed
    results = {}
    for split in splits:
        pieces = corpus.splits.get(split) or []
        sums = {"model": 0.0, "zero": 0.0, "persistence": 0.0}
        count = steps = 0
        for piece in pieces:
            runner, predict, layout = _fit_streams(candidates, model, piece, seq_len, split)
            if runner is None:
                continue
            runner.reset_rnn_states()
            for inputs, targets in tbptt_dataset(piece, normaliser, layout):
                pred = predict(inputs).numpy().astype(np.float64)
                t = targets.numpy().astype(np.float64)
                last = inputs.numpy()[..., -model.hop :].astype(np.float64)
                sums["model"] += float(np.sum((pred - t) ** 2))
                sums["zero"] += float(np.sum(t**2))
                sums["persistence"] += float(np.sum((last - t) ** 2))
                count += t.size
                steps += t.shape[0] * t.shape[1]
        if count == 0:
            results[split] = None
            continue
        results[split] = {k: v / count for k, v in sums.items()}
        results[split].update(steps=steps, seconds=count / model.sample_rate)
    return results


def _fit_streams(candidates, model, piece, seq_len, split):
    """The first ``[batch, model, predict_fn]`` candidate whose streams fit ``piece``.

    Models and compiled predict functions are made on first use and cached in place.
    """
    import tensorflow as tf

    from .errors import SpeechgenError

    for entry in candidates:
        batch, runner, predict = entry
        try:
            layout = StreamLayout.plan(len(piece), model.window, model.hop, seq_len, batch, split)
        except SpeechgenError:
            continue
        if runner is None:
            runner = entry[1] = model.with_batch_size(batch)
        if predict is None:
            predict = entry[2] = tf.function(lambda x, m=runner: m(x, training=False))
        return runner, predict, layout
    return None, None, None


def format_table(results):
    """A markdown table of :func:`evaluate_model` results."""
    lines = [
        "| split | model MSE | zero MSE | persistence MSE | model / best baseline | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for split, r in results.items():
        if r is None:
            lines.append(f"| {split} | - | - | - | too short to score | - |")
            continue
        ratio = r["model"] / min(r["zero"], r["persistence"])
        lines.append(
            f"| {split} | {r['model']:.6f} | {r['zero']:.6f} | {r['persistence']:.6f} "
            f"| {ratio:.3f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)
