"""Output heads: what the network's last layer means, how it is trained, sampled and
decoded. A head is one object, asked by training (loss, metrics, targets), generation
(sampling the next samples), evaluation (point predictions and log-likelihoods) and
scheduled sampling alike, so adding a head touches this file only.

- :class:`MSEHead`: the write-ups' regression head. The network outputs the next
  ``hop`` samples (normalised units); the loss is their mean squared error. Sampling is
  the prediction plus optional Gaussian noise (``noise`` x the validation RMSE, the old
  ``--temperature`` of MSE models; not a temperature).
- :class:`CategoricalHead`: a softmax over ``levels`` quantised sample values per
  predicted sample (SampleRNN, WaveNet). Targets are class ids (the pipeline quantises
  them), the loss is sparse cross-entropy from float32 logits, and the metric shown is
  bits per sample (the loss / ln 2, from the loss's own cross-entropy). Sampling draws a class from
  ``softmax(logits / T)`` (``T = 0``: argmax) and decodes it to its bin's value.
"""

import math
import threading

import keras
import numpy as np

from ..data import quantise as q
from . import draws

HEADS = ("mse", "categorical")


def reshape_tail(x, n, tail):
    """Reshape the last ``n`` axes of ``x`` to ``tail``, keeping the leading axes; works
    on symbolic tensors with one unknown (time) axis too."""
    lead = [d if d is not None else -1 for d in x.shape[: len(x.shape) - n]]
    return keras.ops.reshape(x, (*lead, *tail))


def make_head(output="mse", levels=256, quantisation="mulaw", output_activation="tanh"):
    """The head for a model's settings (the ``output``, ``levels``, ``quantisation``
    and ``output_activation`` config keys)."""
    if output == "categorical":
        return CategoricalHead(levels, quantisation)
    return MSEHead(output_activation)


class _Handoff(threading.local):
    """One training step's per-sample nats, from the loss to the bits metric. Per
    thread: under a MirroredStrategy each replica traces its step in its own thread."""

    y_pred = None
    nats = None


@keras.saving.register_keras_serializable(package="speechgen")
class CategoricalNats(keras.losses.Loss):
    """Sparse categorical cross-entropy from logits in nats, the mean over samples (what
    ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)`` computes), handing
    each call's per-sample nats to the :class:`BitsPerSample` metric of the same step.

    Keras computes the loss and then the metrics from the same ``(y_true, y_pred)``;
    without the handoff the metric computed the whole softmax cross-entropy a second
    time (in the TF profile of the speech recipe's step, ~30 ms of op time, as long as
    the loss's own; the step measured 3-8 % faster without it, the rest overlapped).

    Shapes: ``y_true (B, T, hop)`` int class ids, ``y_pred (B, T, hop, levels)`` logits.
    """

    def __init__(self, name="categorical_nats", **kwargs):
        super().__init__(name=name, **kwargs)
        self.handoff = _Handoff()

    def call(self, y_true, y_pred):
        nats = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        self.handoff.y_pred, self.handoff.nats = y_pred, nats
        return nats

    def take(self, y_pred):
        """The nats of the last call if it was on this very ``y_pred`` tensor (then
        forgotten: each is used once), else None."""
        handoff = self.handoff
        nats = handoff.nats if handoff.y_pred is y_pred else None
        handoff.y_pred = handoff.nats = None
        return nats


@keras.saving.register_keras_serializable(package="speechgen")
class BitsPerSample(keras.metrics.Mean):
    """The running mean of the sparse categorical cross-entropy in bits (nats / ln 2).

    ``loss``: the :class:`CategoricalNats` compiled with it, whose nats of the same
    step are reused (else, or when they are not for this ``y_pred``, they are computed).
    Shapes: ``y_true (B, T, hop)`` int class ids, ``y_pred (B, T, hop, levels)`` logits.
    """

    def __init__(self, name="bits", loss=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss = loss

    def update_state(self, y_true, y_pred, sample_weight=None):
        nats = self.loss.take(y_pred) if self.loss is not None else None
        if nats is None:
            nats = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return super().update_state(nats / math.log(2.0), sample_weight)


@keras.saving.register_keras_serializable(package="speechgen")
class ExpectedValueMSE(keras.metrics.Mean):
    """MSE of the decoded expectation of a categorical output against the true samples'
    decoded classes, so MSE and categorical models share one unit (normalised).
    """

    def __init__(self, levels=256, quantisation="mulaw", name="mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.levels, self.quantisation = levels, quantisation

    def update_state(self, y_true, y_pred, sample_weight=None):
        head = CategoricalHead(self.levels, self.quantisation)
        truth = q.dequantise(y_true, self.levels, self.quantisation, ops=keras.ops)
        error = keras.ops.square(head.point(y_pred) - truth)
        return super().update_state(error, sample_weight)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "quantisation": self.quantisation}


class MSEHead:
    """Regression: the network outputs ``hop`` samples per step.

    Args:
        activation: the output layer's activation (``tanh`` or ``linear``).
    """

    kind = "mse"
    width = 1  # network outputs per predicted sample

    def __init__(self, activation="tanh"):
        self.activation = activation

    def output_layer(self, hop, regulariser=None, name="next_samples"):
        """The last layer: ``(..., features) -> (..., hop)``."""
        return keras.layers.Dense(
            hop, activation=self.activation, kernel_regularizer=regulariser, name=name, dtype="float32"
        )

    def shape_outputs(self, y, hop):
        """Network output ``(..., hop * width)`` -> the head's output ``(..., hop)``."""
        return y

    def loss(self):
        return "mse"

    def metrics(self):
        return ["mse"]

    def targets(self, samples, ops=np):
        """Training targets from samples (normalised units): the samples themselves."""
        return samples

    def point(self, outputs):
        """A point prediction in normalised units, ``(..., hop)``."""
        return outputs

    def sample(self, outputs, draw_key, temperature=0.0, noise=0.0):
        """Draw the next samples: the prediction plus ``noise`` x N(0, 1), the normal
        numbers drawn for ``draw_key`` (:func:`speechgen.model.draws.key`)."""
        if not noise:
            return outputs
        shape = tuple(outputs.shape)
        return outputs + noise * keras.ops.cast(draws.normal(shape, draw_key), outputs.dtype)

    def describe(self):
        return f"mse ({self.activation} output)"


class CategoricalHead:
    """A softmax over ``levels`` quantised values per predicted sample.

    Args:
        levels: number of classes (2 .. 65536).
        quantisation: ``mulaw`` or ``linear`` (:mod:`speechgen.data.quantise`).
    Shapes: network output ``(..., hop * levels)`` -> logits ``(..., hop, levels)``.
    """

    kind = "categorical"

    def __init__(self, levels=256, quantisation="mulaw"):
        self.levels, self.quantisation = int(levels), quantisation
        self.width = self.levels
        self._values = q.class_values(self.levels, quantisation)  # (levels,) float32
        self._block = math.isqrt(self.levels - 1) + 1  # sampling's block size, ceil(sqrt(levels))

    def output_layer(self, hop, regulariser=None, name="next_samples"):
        return keras.layers.Dense(hop * self.levels, kernel_regularizer=regulariser, name=name, dtype="float32")

    def shape_outputs(self, y, hop):
        return reshape_tail(y, 1, (hop, self.levels))

    def loss(self):
        """The training loss, a new :class:`CategoricalNats` (its bits metric comes
        from :meth:`metrics` after it)."""
        self._loss = CategoricalNats()
        return self._loss

    def metrics(self):
        """Bits per sample (reusing the nats of the loss :meth:`loss` last made, if
        any) and the decoded expectation's MSE."""
        return [BitsPerSample(loss=getattr(self, "_loss", None)), ExpectedValueMSE(self.levels, self.quantisation)]

    def targets(self, samples, ops=np):
        return q.quantise(samples, self.levels, self.quantisation, ops=ops)

    def decode(self, classes, ops=np):
        """Class ids -> sample values (normalised units): a lookup in the table of
        every class's value (speechgen.data.quantise.class_values), the one path from
        classes to values for sampling, the generator's carried classes and evaluate."""
        if ops is np:
            return self._values[np.asarray(classes)]
        return ops.take(ops.convert_to_tensor(self._values), ops.cast(classes, "int32"))

    def point(self, outputs):
        """The decoded expectation ``sum_k p_k v_k``, ``(..., hop)``."""
        ops = keras.ops
        p = ops.softmax(ops.cast(outputs, "float32"), axis=-1)
        return ops.sum(p * ops.convert_to_tensor(self._values), axis=-1)

    def sample_classes(self, outputs, draw_key, temperature=1.0):
        """Draw one class per sample from ``softmax(logits / temperature)`` (argmax at 0):
        ``outputs (..., levels)`` -> int32 class ids ``(...)``.

        Inverse-CDF sampling with one uniform number per sample (drawn for ``draw_key``,
        :func:`speechgen.model.draws.key`), in two levels: the levels are cut into
        blocks of ``ceil(sqrt(levels))`` (16 x 16 for 256), ``u`` x the total picks a
        block by the blocks' cumulative sums and then a class by the cumulative sums
        inside it. One ``exp`` per level and one random number per sample; the two
        short cumulative sums cost 2.4x less than one over all levels (XLA, 256
        streams: 140 against 336 us a draw), and the Gumbel-max trick before them
        needed a random number and two logarithms per level (half of the generation
        time)."""
        ops = keras.ops
        logits = ops.cast(outputs, "float32")
        if not temperature:
            return ops.cast(ops.argmax(logits, axis=-1), "int32")
        lead = tuple(logits.shape)[:-1]
        size = self._block
        n_blocks = -(-self.levels // size)
        weights = ops.exp((logits - ops.max(logits, axis=-1, keepdims=True)) / temperature)
        if n_blocks * size > self.levels:  # zero-weight classes past the end, never drawn
            weights = ops.pad(weights, [(0, 0)] * len(lead) + [(0, n_blocks * size - self.levels)])
        weights = ops.reshape(weights, (*lead, n_blocks, size))
        blocks = ops.sum(weights, axis=-1)  # (..., n_blocks)
        through = ops.cumsum(blocks, axis=-1)
        u = draws.uniform((*lead, 1), draw_key) * through[..., -1:]
        block = ops.minimum(ops.sum(ops.cast(through < u, "int32"), axis=-1), n_blocks - 1)
        inside = ops.take_along_axis(weights, block[..., None, None], axis=-2)[..., 0, :]  # (..., size)
        before = ops.take_along_axis(through - blocks, block[..., None], axis=-1)  # (..., 1)
        below = ops.sum(ops.cast(ops.cumsum(inside, axis=-1) + before < u, "int32"), axis=-1)
        return ops.minimum(block * size + ops.minimum(below, size - 1), self.levels - 1)

    def sample(self, outputs, draw_key, temperature=1.0, noise=0.0):
        """Drawn samples' values ``(...)`` float32 for logits ``(..., levels)``
        (:meth:`sample_classes`, decoded)."""
        return self.decode(self.sample_classes(outputs, draw_key, temperature), ops=keras.ops)

    def describe(self):
        return f"categorical ({self.levels} {self.quantisation} levels)"
