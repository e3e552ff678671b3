"""The custom layers of :class:`speechgen.model.SpeechRNN` (keras-hub conventions:
``**kwargs`` forwarded, one attribute per argument, ``get_config`` mirrors the constructor)."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="speechgen")
class PhoneEncoding(layers.Layer):
    """Phone ids -> one vector per step: one-hot, or a learned embedding.

    Args:
        n_phones: size of the phone inventory.
        embedding: 0 for one-hot, else the embedding size.
        positions: 0, or the number of position buckets when the last id column is
            the position within the current phone (``phones: context_position``):
            that column is one-hot over ``positions``, never looked up as a phone.
    Shapes:
        ``(batch, steps, context)`` int32 -> ``(batch, steps, phone_columns * width +
        positions)`` float, ``width = n_phones`` (one-hot) or ``embedding``;
        ``phone_columns = context`` (``context - 1`` with positions).
    """

    def __init__(self, n_phones, embedding=0, positions=0, **kwargs):
        super().__init__(**kwargs)
        self.n_phones = n_phones
        self.embedding = embedding
        self.positions = int(positions)
        self.table = layers.Embedding(n_phones, embedding, name="table") if embedding else None

    def build(self, input_shape):
        if self.table is not None:
            self.table.build(input_shape)

    def call(self, ids):
        phone_ids = ids[..., :-1] if self.positions else ids
        if self.table is not None:
            vectors = self.table(phone_ids)
        else:
            vectors = keras.ops.one_hot(phone_ids, self.n_phones, dtype=self.compute_dtype)
        shape = keras.ops.shape(vectors)
        encoded = keras.ops.reshape(vectors, (shape[0], shape[1], shape[2] * shape[3]))
        if not self.positions:
            return encoded
        position = keras.ops.one_hot(ids[..., -1], self.positions, dtype=encoded.dtype)
        return keras.ops.concatenate([encoded, position], axis=-1)

    def compute_output_shape(self, input_shape):
        width = self.embedding or self.n_phones
        columns = input_shape[2] - 1 if self.positions else input_shape[2]
        return (*input_shape[:2], columns * width + self.positions)

    def get_config(self):
        return {**super().get_config(), "n_phones": self.n_phones, "embedding": self.embedding,
                "positions": self.positions}


@keras.saving.register_keras_serializable(package="speechgen")
class ScheduledNoise(layers.Layer):
    """Gaussian noise on the input while training, with a sigma that a schedule can
    change between epochs (a variable, so compiled training functions see it).

    Args:
        stddev: the initial sigma (normalised units).
        seed: seeds the noise.
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = float(stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        # Not a weight (see SpeechRNN.sampling_p): the schedule sets it each epoch.
        object.__setattr__(self, "sigma", keras.Variable(self.stddev, trainable=False, name="sigma"))

    def call(self, x, training=False):
        if not training:
            return x
        noise = keras.random.normal(keras.ops.shape(x), seed=self.seed_generator, dtype=x.dtype)
        return x + keras.ops.cast(self.sigma, x.dtype) * noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


def _lstm_bias_init(shape, dtype=None):
    """Keras LSTM's ``unit_forget_bias``: zeros, except ones for the forget gate."""
    u = shape[0] // 4
    return keras.ops.concatenate(
        [keras.ops.zeros((u,), dtype), keras.ops.ones((u,), dtype), keras.ops.zeros((2 * u,), dtype)]
    )


@keras.saving.register_keras_serializable(package="speechgen")
class RecurrentOnlyLSTMCell(layers.Layer):
    """An LSTM cell whose input projection ``x @ W`` (``4 * units`` wide) was computed
    before the recurrence (``hoist_input``): ``z = x_t + h @ U + b``, gates i, f, c, o
    as in ``keras.layers.LSTMCell`` (default activations).

    Args:
        units: the state size.
    Weights:
        ``recurrent_kernel (units, 4 * units)`` (orthogonal init), ``bias (4 * units,)``
        (zeros, ones for the forget gate, like Keras' ``unit_forget_bias``).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        u = self.units
        self.recurrent_kernel = self.add_weight(
            shape=(u, 4 * u), initializer="orthogonal", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(4 * u,), initializer=_lstm_bias_init, name="bias")

    def call(self, inputs, states, training=False):
        ops = keras.ops
        h, c = states
        z = inputs + ops.matmul(h, ops.cast(self.recurrent_kernel, h.dtype)) + ops.cast(self.bias, h.dtype)
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="speechgen")
class StepUpsampling(layers.Layer):
    """An upper tier's upsampled output, one vector per lower-tier step.

    The learned part is the ``Dense(ratio * width)`` before it (``top_upsample``); this
    layer only lays each upper step's ``ratio`` vectors out along time and cuts the
    result to the lower tier's step count (a call of ``T`` lower steps has
    ``ceil(T / ratio)`` upper steps).

    Args:
        ratio: lower-tier steps per upper-tier step.
    Shapes:
        ``(B, S, ratio * width)`` and the lower tier's input ``(B, T, ...)`` ->
        ``(B, T, width)``.
    """

    def __init__(self, ratio, **kwargs):
        super().__init__(**kwargs)
        self.ratio = int(ratio)

    def call(self, upper, lower):
        ops = keras.ops
        width = upper.shape[-1] // self.ratio
        shape = ops.shape(upper)
        steps = ops.reshape(upper, (shape[0], shape[1] * self.ratio, width))
        return steps[:, : ops.shape(lower)[1]]

    def compute_output_shape(self, upper_shape, lower_shape):
        return (upper_shape[0], lower_shape[1], upper_shape[-1] // self.ratio)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}
