"""Speed prototypes measured by benchmarks/suite.py (not used by speechgen itself).

- :func:`hoisted_model` (the prototype of ``hoist_input``, now built into SpeechRNN):
  a :class:`speechgen.model.SpeechRNN` whose first LSTM's input
  projection ``x @ W`` is computed for all ``batch x steps`` frames in one large
  matmul (a ``Dense`` before the recurrence) instead of one skinny ``(batch, window)``
  matmul per time step inside the Keras LSTM cell. Same maths, same weights
  (:func:`copy_weights_to_hoisted`), so it can be checked against the original.
- :class:`FusedGenerator`: :class:`speechgen.generate.Generator` with one matmul per
  layer (``[x, h] @ [W; U]``) instead of two.
- :class:`Bf16Generator`: the same loop with bfloat16 weights and matmul inputs
  (gates, cell state and output in float32).
"""

import keras
import numpy as np
from keras import layers

from speechgen.generate import Generator
from speechgen.model.layers import RecurrentOnlyLSTMCell  # the cell speechgen's hoist_input uses


def hoisted_model(window, hop, units, batch_size, output_activation="tanh"):
    """SpeechRNN's maths with the first layer's input matmul hoisted out of the loop."""
    frames = keras.Input(batch_shape=(batch_size, None, window), name="frames")
    x = layers.Dense(4 * units[0], use_bias=False, name="lstm_0_input")(frames)
    x = layers.RNN(RecurrentOnlyLSTMCell(units[0]), return_sequences=True, stateful=True, name="lstm_0")(x)
    for i, size in enumerate(units[1:], start=1):
        x = layers.LSTM(size, return_sequences=True, stateful=True, name=f"lstm_{i}")(x)
    out = layers.Dense(hop, activation=output_activation, name="next_samples")(x)
    return keras.Model(frames, out)


def copy_weights_to_hoisted(model, hoisted):
    """Give ``hoisted`` the weights of a SpeechRNN ``model`` (same architecture)."""
    kernel, recurrent, bias = model.get_layer("lstm_0").cell.get_weights()
    hoisted.get_layer("lstm_0_input").set_weights([kernel])
    hoisted.get_layer("lstm_0").cell.set_weights([recurrent, bias])
    for layer in model.layers:
        if layer.name.startswith("lstm_") and layer.name != "lstm_0" or layer.name == "next_samples":
            hoisted.get_layer(layer.name).set_weights(layer.get_weights())


class FusedGenerator(Generator):
    """One ``[x, h] @ [W; U]`` matmul per layer and step."""

    dtype = "float32"

    def __init__(self, model, streams=1):
        import tensorflow as tf

        super().__init__(model, streams)
        d = tf.as_dtype(self.dtype)
        fused = []
        for layer, (kernel, recurrent, bias) in enumerate(self._cells):
            k = self._audio_kernel if layer == 0 else kernel
            fused.append((tf.cast(tf.concat([k, recurrent], axis=0), d), bias))
        self._fused = fused
        self._dense_cast = (tf.cast(self._dense[0], d), self._dense[1])

    def _step(self, window, states, ids):
        import tensorflow as tf

        d = tf.as_dtype(self.dtype)
        x, new_states = window, []
        for layer, ((weights, bias), (h, c)) in enumerate(zip(self._fused, states)):
            z = tf.matmul(tf.cast(tf.concat([x, h], axis=1), d), weights)
            z = tf.cast(z, tf.float32) + bias
            if layer == 0 and ids is not None:
                for k in range(self.context):
                    z += tf.gather(self._phone_tables[k], ids[:, k])
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            x = tf.sigmoid(o) * tf.tanh(c)
            new_states.append((x, c))
        kernel, bias = self._dense_cast
        y = tf.cast(tf.matmul(tf.cast(x, d), kernel), tf.float32) + bias
        if self._activation == "tanh":
            y = tf.tanh(y)
        elif self._activation == "relu":
            y = tf.nn.relu(y)
        return y, new_states


class Bf16Generator(FusedGenerator):
    """The fused loop with bfloat16 weights and matmul inputs; float32 gates and state."""

    dtype = "bfloat16"


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
