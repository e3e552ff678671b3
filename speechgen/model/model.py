"""The one model family: a stateful stacked LSTM that predicts the next ``hop`` samples.

Frame-level (write-up 1), sample-level (write-up 2) and tiered (SampleRNN-like)
models are settings of :class:`SpeechRNN` (``hop == window``; ``hop == 1``; a
sample-level ``predictor`` below the LSTM tier), and the head (MSE or categorical,
:mod:`speechgen.model.heads`) is one more setting, not another code path.
Backend-neutral: only ``keras`` layers and ``keras.ops``.
"""


import keras
import numpy as np
from keras import layers

from ..config import split_run_state
from ..data.phones import CONTEXTS, positions_of
from ..data.quantise import quantise
from ..errors import SpeechgenError
from .checkpoint_state import CheckpointState
from .multi_worker import MultiWorkerFit
from .heads import make_head, reshape_tail
from .layers import PhoneEncoding, RecurrentOnlyLSTMCell, ScheduledNoise, StepUpsampling

# The version of the saved model layout (SpeechRNN's config). Bump it when a change
# makes older speechgen versions misread new files; files without it are format 1.
# Format 2 adds heads (output, levels, quantisation) and the tiered predictor; format 3
# an upper frame tier (top_units, top_frame).
FORMAT_VERSION = 3


@keras.saving.register_keras_serializable(package="speechgen")
class SpeechRNN(MultiWorkerFit, CheckpointState, keras.Model):
    """GaussianNoise -> N x LSTM(stateful) with Dropout between -> head, or, tiered,
    -> upsampling -> a sample-level predictor -> head.

    Built functionally inside the subclass (keras-hub style): the constructor takes
    everything needed to rebuild the model and ``get_config`` mirrors it, so a saved
    ``.keras`` file carries its sample rate, framing, normaliser and training config
    and needs nothing else to sample or evaluate.

    Args:
        window: samples read per step.
        hop: samples predicted per step (``<= window``).
        units: list, one LSTM of that many units per entry.
        batch_size: fixed batch size (stateful layers need it): training streams, or
            1 / N for generation.
        dropout: dropout rate between LSTM layers.
        input_noise: std of the Gaussian noise added to inputs while training (its
            schedule changes it per epoch).
        output_activation: ``tanh`` or ``linear`` (MSE heads).
        l2: L2 penalty on the LSTM and Dense kernels.
        sample_rate: Hz, for writing generated audio.
        normaliser: dict (:class:`speechgen.corpus.Normaliser.to_dict`).
        train_config: the resolved training config plus the data path (dict):
            hyper-parameters only.
        run_state: the run's record (dict, :data:`speechgen.config.RUN_KEYS`):
            ``val_rmse`` in ``model.keras``; the position in the run in
            ``checkpoint.keras`` (:class:`speechgen.training.callbacks.RunRecorder`).
        phones: the phone inventory (list, id order) of a phone-conditioned model, or
            None.
        phone_context: phone ids per step, 1 (current), 3 (previous, current, next) or 4
            (those and the position bucket within the current phone).
        phone_embedding: 0 for one-hot phones, else the learned embedding size.
        phone_durations: phone -> median duration in seconds in the training corpus
            (dict), the durations ``speechgen say`` gives the phones it speaks; None
            for models without phones (or made before the key existed).
        input_dropout: dropout rate on the input samples while training.
        scheduled_sampling: True to train with scheduled sampling (the probability is
            set per epoch by :class:`speechgen.schedules.DriftSchedules`).
        mixed_precision: ``none``, ``mixed_float16`` or ``mixed_bfloat16``: the hidden
            layers compute in 16 bits with float32 weights; the output layer stays
            float32 so the loss and the generated samples keep full precision.
        hoist_input: True to compute the first layer's input projection for the whole
            chunk in one matmul (a bias-free ``Dense(4 * units[0])`` named
            ``lstm_0_input``, then an RNN of :class:`RecurrentOnlyLSTMCell` named
            ``lstm_0``): the same maths and parameter count, faster on CPU; that layer
            does not use cuDNN on GPU.
        output: the head, ``mse`` or ``categorical`` (:mod:`speechgen.model.heads`).
        levels, quantisation: the categorical head's classes and their map.
        predictor_units: empty for an untiered model; else the LSTM stack is a frame
            tier (one step per ``hop`` samples) whose output is upsampled to one
            vector per sample (``Dense(hop * predictor_units[0])``, named
            ``upsample``) and added to a projection of each sample's last
            ``predictor_window`` samples (``predictor_input``); ReLU layers of
            ``predictor_units`` then the head's output layer give every sample's
            prediction (SampleRNN's sample-level MLP).
        predictor_window: samples each sample's predictor reads (``<= window``;
            0 means ``hop``).
        input_embedding: 0 for real-valued predictor inputs, else each input sample is
            quantised and embedded in this many dimensions (``input_embedding``
            layer; SampleRNN's embedding), categorical heads only.
        top_units: empty for at most one frame tier; else an upper frame tier (SampleRNN's
            top tier), one stateful LSTM per entry (``top_lstm_0``, ...), above the LSTM
            stack, tiered models only. Its step ``s`` reads the newest ``top_frame``
            samples of lower step ``s * r``'s window (``r = top_frame // hop``; the
            samples just before lower steps ``s*r .. s*r + r - 1``, so it is causal)
            and, phone-conditioned, that step's phones (which then reach this tier
            only); ``Dense(r * units[0])`` (``top_upsample``) gives one vector per lower
            step, concatenated with the lower tier's input frame.
        top_frame: samples per upper-tier step (a multiple of ``hop``, ``<= window``).

    Shapes:
        inputs ``frames (batch_size, steps, window + lookahead)`` float32
        (``lookahead = hop - 1`` for tiered models, else 0;
        :class:`speechgen.data.framing.Framing`) and, phone-conditioned, ``phones
        (batch_size, steps, phone_context)`` int32 -> outputs ``(batch_size, steps,
        hop)`` float32 normalised samples (MSE) or ``(batch_size, steps, hop,
        levels)`` float32 logits (categorical). ``steps`` may differ from call to call; the LSTM
        state carries over between calls until :meth:`reset_rnn_states`.
    """

    def __init__(
        self,
        window,
        hop,
        units=(600, 600, 600),
        batch_size=1,
        dropout=0.0,
        input_noise=0.0,
        output_activation="tanh",
        l2=0.0,
        sample_rate=16000,
        normaliser=None,
        train_config=None,
        run_state=None,
        phones=None,
        phone_context=1,
        phone_embedding=0,
        phone_durations=None,
        mixed_precision="none",
        input_dropout=0.0,
        scheduled_sampling=False,
        hoist_input=False,
        output="mse",
        levels=256,
        quantisation="mulaw",
        predictor_units=(),
        predictor_window=0,
        input_embedding=0,
        top_units=(),
        top_frame=0,
        **kwargs,
    ):
        head = make_head(output, levels, quantisation, output_activation)
        predictor_units = list(predictor_units or [])
        predictor_window = predictor_window or hop
        top_units = list(top_units or [])
        top_ratio = top_frame // hop if top_units else 1
        lookahead = hop - 1 if predictor_units else 0
        regulariser = keras.regularizers.L2(l2) if l2 else None
        # A per-layer policy, not keras.mixed_precision.set_global_policy: loading or
        # building one model must not change how any other model is built.
        hidden = None if mixed_precision == "none" else keras.DTypePolicy(mixed_precision)
        frames = keras.Input(batch_shape=(batch_size, None, window + lookahead), name="frames")
        # The frame tier reads the window before the step's targets, never the lookahead.
        x = frames[..., :window] if lookahead else frames
        if input_noise:
            x = ScheduledNoise(input_noise, name="input_noise", dtype=hidden)(x)
        if input_dropout:
            x = layers.Dropout(input_dropout, name="input_dropout", dtype=hidden)(x)
        inputs, ids = frames, None
        if phones:
            ids = keras.Input(batch_shape=(batch_size, None, phone_context), dtype="int32", name="phones")
            inputs = [frames, ids]
        if top_units:
            # Phones, if any, condition the upper tier only (the phones of its steps).
            top = _upper_tier(x, ids, window, top_frame, top_ratio, top_units, units[0], dropout, regulariser,
                              hidden, phones, phone_embedding, positions_of(phone_context))
            x = layers.Concatenate(name="frames_and_top", dtype=hidden)([x, top])
        elif phones:
            encoded = PhoneEncoding(len(phones), phone_embedding, positions_of(phone_context),
                                    name="phone_encoding", dtype=hidden)(ids)
            x = layers.Concatenate(name="frames_and_phones", dtype=hidden)([x, encoded])
        for i, size in enumerate(units):
            if i and dropout:
                x = layers.Dropout(dropout, name=f"dropout_{i}", dtype=hidden)(x)
            if i == 0 and hoist_input:
                x = layers.Dense(
                    4 * size, use_bias=False, kernel_initializer="glorot_uniform",
                    kernel_regularizer=regulariser, name="lstm_0_input", dtype=hidden,
                )(x)
                x = layers.RNN(
                    RecurrentOnlyLSTMCell(size, dtype=hidden, name="lstm_0_cell"),
                    return_sequences=True, stateful=True, name="lstm_0", dtype=hidden,
                )(x)
                continue
            # Default activations and recurrent_dropout=0 keep the cuDNN kernel on GPU.
            x = layers.LSTM(
                size,
                return_sequences=True,
                stateful=True,
                kernel_regularizer=regulariser,
                name=f"lstm_{i}",
                dtype=hidden,
            )(x)
        if predictor_units:
            y = _sample_predictor(
                frames, x, head, window, hop, predictor_units, predictor_window, input_embedding, regulariser, hidden
            )
        else:
            y = head.output_layer(hop, regulariser)(x)
        outputs = head.shape_outputs(y, hop)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.head = head
        self.output_kind = output
        self.levels = int(levels)
        self.quantisation = quantisation
        self.predictor_units = predictor_units
        self.predictor_window = int(predictor_window)
        self.input_embedding = int(input_embedding)
        self.top_units = top_units
        self.top_frame = int(top_frame) if top_units else 0
        self.top_ratio = top_ratio  # lower-tier steps per upper-tier step (1: no upper tier)
        self.window = window
        self.hop = hop
        self.units = list(units)
        self.batch_size = batch_size
        self.dropout = dropout
        self.input_noise = input_noise
        self.output_activation = output_activation
        self.l2 = l2
        self.sample_rate = sample_rate
        self.normaliser = normaliser
        self.train_config = train_config
        self.run_state = dict(run_state or {})
        self.phones = list(phones) if phones else None
        self.phone_context = phone_context
        self.phone_embedding = phone_embedding
        self.phone_durations = dict(phone_durations) if phone_durations else None
        self.mixed_precision = mixed_precision
        self.input_dropout = input_dropout
        self.scheduled_sampling = bool(scheduled_sampling)
        self.hoist_input = bool(hoist_input)
        # The scheduled-sampling probability: a variable so the compiled training step
        # reads the current value. Kept out of Keras' tracking on purpose: it is
        # schedule state, not a parameter (count_params stays the write-up's), and
        # the schedule sets it again at every epoch start, resumed runs included.
        object.__setattr__(self, "sampling_p", keras.Variable(0.0, trainable=False, name="sampling_p"))
        object.__setattr__(self, "_sampling_seed", keras.random.SeedGenerator(1234))

    def set_schedules(self, sampling_p=None, input_noise=None):
        """Set the scheduled-sampling probability and the input-noise sigma."""
        if sampling_p is not None:
            self.sampling_p.assign(sampling_p)
        if input_noise is not None and "input_noise" in [l.name for l in self.layers]:
            self.get_layer("input_noise").sigma.assign(input_noise)

    def _rnn_state_variables(self):
        return [v for l in self.layers if isinstance(l, layers.RNN) and l.states is not None for v in l.states]

    def mix_with_own_predictions(self, x, probability):
        """Inputs for scheduled sampling (two-pass, parallel form).

        Pass 1 predicts every step teacher-forced, without gradient and without moving
        the LSTM state (it is saved and restored). Then the input of step ``t >= 1``
        has its newest ``hop`` samples (for frame-level models: the whole frame)
        replaced by the pass-1 prediction of step ``t - 1`` with ``probability``. The
        first step of a chunk keeps its true input (no prediction precedes it here).

        Args:
            x: frames ``(B, T, window)`` or ``[frames, phones]``.
            probability: scalar in [0, 1].
        Returns:
            ``x`` with mixed frames.
        """
        ops = keras.ops
        frames = x[0] if isinstance(x, (list, tuple)) else x
        saved = [ops.copy(v.value) for v in self._rnn_state_variables()]
        predictions = ops.stop_gradient(ops.cast(self.head.point(self(x, training=False)), frames.dtype))
        for v, value in zip(self._rnn_state_variables(), saved):
            v.assign(value)
        hop, window = self.hop, self.window
        replaced = ops.concatenate([frames[:, 1:, : window - hop], predictions[:, :-1]], axis=-1)
        shape = ops.shape(frames)
        draw = keras.random.uniform((shape[0], shape[1] - 1, 1), seed=self._sampling_seed)
        rest = ops.where(draw < ops.cast(probability, draw.dtype), replaced, frames[:, 1:])
        mixed = ops.concatenate([frames[:, :1], rest], axis=1)
        return [mixed, x[1]] if isinstance(x, (list, tuple)) else mixed

    def train_step(self, data):
        # Scheduled sampling swaps the inputs, then trains exactly as Keras does.
        if self.scheduled_sampling:
            x, y = data[0], data[1]
            data = (self.mix_with_own_predictions(x, self.sampling_p), y, *data[2:])
        return self._for_multi_worker(super().train_step(data))

    def test_step(self, data):
        return self._for_multi_worker(super().test_step(data))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "window": self.window,
            "hop": self.hop,
            "units": self.units,
            "batch_size": self.batch_size,
            "dropout": self.dropout,
            "input_noise": self.input_noise,
            "output_activation": self.output_activation,
            "l2": self.l2,
            "sample_rate": self.sample_rate,
            "normaliser": self.normaliser,
            "train_config": self.train_config,
            "run_state": self.run_state,
            "phones": self.phones,
            "phone_context": self.phone_context,
            "phone_embedding": self.phone_embedding,
            "phone_durations": self.phone_durations,
            "mixed_precision": self.mixed_precision,
            "input_dropout": self.input_dropout,
            "scheduled_sampling": self.scheduled_sampling,
            "hoist_input": self.hoist_input,
            "output": self.output_kind,
            "levels": self.levels,
            "quantisation": self.quantisation,
            "predictor_units": self.predictor_units,
            "predictor_window": self.predictor_window,
            "input_embedding": self.input_embedding,
            "top_units": self.top_units,
            "top_frame": self.top_frame,
            "format": FORMAT_VERSION,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        version = config.pop("format", 1)  # files saved before the key existed are format 1
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SpeechgenError(newer_message(version))
        # Older files kept the run record inside train_config: move it to its own.
        config["train_config"], moved = split_run_state(config.get("train_config"))
        config["run_state"] = {**moved, **(config.get("run_state") or {})}
        if config["train_config"] == {}:
            config["train_config"] = None
        return cls(**config)

    def reset_rnn_states(self):
        """Zero the state of every LSTM (not of other layers: see docs/design.md)."""
        for layer in self.layers:
            if isinstance(layer, layers.RNN):
                layer.reset_state()

    def reset_rnn_rows(self, fresh):
        """Zero the LSTM state of the rows where ``fresh`` (bool, (batch_size,)) is True.

        Used when some rows of a batch start a new utterance while others continue.
        """
        keep = 1.0 - keras.ops.cast(keras.ops.convert_to_tensor(fresh), "float32")[:, None]
        for v in self._rnn_state_variables():
            v.assign(v * keras.ops.cast(keep, v.dtype))

    def with_batch_size(self, batch_size):
        """A copy for another batch size (1 or N streams) with the same weights.

        The LSTM state variables are not weights, so the copy starts from zero state.
        """
        config = self.get_config()
        config["batch_size"] = batch_size
        copy = type(self).from_config(config)
        copy.set_weights(self.get_weights())
        return copy


def predictor_windows(frames, window, hop, k):
    """Each predicted sample's last ``k`` input samples: ``(B, T, window + hop - 1)`` ->
    ``(B, T, hop, k)``; sample ``j`` of a step reads ``frames[..., window - k + j :
    window + j]`` (the true samples before it, teacher-forced)."""
    return keras.ops.take(frames, predictor_windows_index(window, hop, k), axis=-1)


def predictor_windows_index(window, hop, k):
    """``(hop, k)`` int: sample ``j``'s window, positions ``window - k + j ..
    window + j - 1`` of a step's frame."""
    return (window - k) + np.arange(hop)[:, None] + np.arange(k)[None, :]


def _upper_tier(x, ids, window, frame, ratio, units, width, dropout, regulariser, dtype, phones, phone_embedding,
                positions):
    """The upper frame tier (see :class:`SpeechRNN`): the lower tier's input ``x (B,
    T, window)`` (after input noise) and phone ids ``(B, T, C)`` or None -> ``(B, T,
    width)``, one conditioning vector per lower step; the generator calls the same
    layers once per ``ratio`` lower steps."""
    z = x[:, ::ratio, window - frame :]  # upper step s: the frame before lower step s * ratio
    if ids is not None:
        encoded = PhoneEncoding(len(phones), phone_embedding, positions, name="phone_encoding",
                                dtype=dtype)(ids[:, ::ratio])
        z = layers.Concatenate(name="top_frames_and_phones", dtype=dtype)([z, encoded])
    for i, size in enumerate(units):
        if i and dropout:
            z = layers.Dropout(dropout, name=f"top_dropout_{i}", dtype=dtype)(z)
        z = layers.LSTM(
            size, return_sequences=True, stateful=True, kernel_regularizer=regulariser, name=f"top_lstm_{i}",
            dtype=dtype,
        )(z)
    z = layers.Dense(ratio * width, kernel_regularizer=regulariser, name="top_upsample", dtype=dtype)(z)
    return StepUpsampling(ratio, name="top_steps", dtype=dtype)(z, x)


def _sample_predictor(frames, tier, head, window, hop, units, k, embedding, regulariser, dtype):
    """The tiered model's sample-level part (see :class:`SpeechRNN`): ``tier (B, T, U)``
    -> ``(B, T, hop, head.width)``; the same layers, called per sample, generate."""
    ops = keras.ops
    cond = layers.Dense(hop * units[0], kernel_regularizer=regulariser, name="upsample", dtype=dtype)(tier)
    cond = reshape_tail(cond, 1, (hop, units[0]))
    if embedding:
        # Quantise and embed each input sample once, then take the windows of the
        # embedded samples: the same values as embedding every window's samples, with
        # 1/k of the quantising, lookups and embedding-gradient rows (measured on the
        # speech recipe: this part of the step 55 -> 37 ms alone, the whole step
        # 0-6 % faster, as the two cores overlap it with other work).
        frames_read = frames[..., window - k:]  # (B, T, k + hop - 1): every sample a window reads
        classes = quantise(frames_read, head.levels, head.quantisation, ops=ops)
        z = layers.Embedding(head.levels, embedding, name="input_embedding", dtype=dtype)(classes)
        z = ops.take(z, predictor_windows_index(k, hop, k), axis=-2)  # (B, T, hop, k, embedding)
        z = reshape_tail(z, 2, (k * embedding,))
    else:
        z = predictor_windows(frames, window, hop, k)
    z = layers.Dense(units[0], kernel_regularizer=regulariser, name="predictor_input", dtype=dtype)(z)
    z = layers.ReLU(name="predictor_relu", dtype=dtype)(z + cond)
    for i, size in enumerate(units[1:], 1):
        z = layers.Dense(size, activation="relu", kernel_regularizer=regulariser, name=f"predictor_{i}", dtype=dtype)(z)
    y = head.output_layer(1, regulariser)(z)  # (B, T, hop, width)
    return reshape_tail(y, 2, (hop * head.width,))


def hoists_input(setting):
    """The ``hoist_input`` setting -> bool: ``on`` / ``off`` as said; ``auto`` hoists
    unless TensorFlow sees a GPU, where the plain LSTM keeps the cuDNN kernel. On CPU
    hoisting is the same maths and faster (frame16k's step 3.12 -> 1.62 s in the
    bin/bench run of 2026-12-03; docs/benchmarks.md)."""
    if setting != "auto":
        return setting == "on"
    if keras.backend.backend() != "tensorflow":
        return True  # no cuDNN LSTM to keep (and training runs under TensorFlow)
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def copy_to_hoisted(plain, hoisted):
    """Give a ``hoist_input`` model the weights of a plain one of the same shape.

    The Dense before the first recurrence (``lstm_0_input``) takes the first LSTM's
    input kernel; the custom cell takes its recurrent kernel and bias; every other
    layer is copied by name. The two models then compute the same function (tests).
    """
    kernel, recurrent, bias = plain.get_layer("lstm_0").cell.get_weights()
    hoisted.get_layer("lstm_0_input").set_weights([kernel])
    hoisted.get_layer("lstm_0").cell.set_weights([recurrent, bias])
    for layer in plain.layers:
        if layer.weights and layer.name != "lstm_0":
            hoisted.get_layer(layer.name).set_weights(layer.get_weights())


def build_model(config, sample_rate, normaliser, data, batch_size=None, phones=None, splits=None,
                phone_durations=None):
    """A :class:`SpeechRNN` from a :class:`speechgen.config.Config`.

    Args:
        phones: the phone inventory (list) when ``config.phones`` is not ``none``.
        phone_durations: phone -> median seconds in the training corpus (with ``phones``).
        splits: recorded utterance names per split (folder corpora).
    """
    keras.utils.set_random_seed(config.seed)
    return SpeechRNN(
        window=config.window,
        hop=config.hop,
        units=config.units,
        batch_size=batch_size or config.batch_size,
        dropout=config.dropout,
        # A noise schedule that starts at 0 still needs the noise layer.
        input_noise=max(config.input_noise, config.input_noise_end),
        output_activation=config.output_activation,
        l2=config.l2,
        sample_rate=sample_rate,
        normaliser=normaliser.to_dict(),
        train_config={**config.to_dict(), "data": str(data), "splits": splits},
        phones=phones if config.phones != "none" else None,
        phone_context=CONTEXTS.get(config.phones, 1),
        phone_embedding=config.phone_embedding,
        phone_durations=phone_durations if config.phones != "none" else None,
        mixed_precision=config.mixed_precision,
        input_dropout=config.input_dropout,
        scheduled_sampling=config.scheduled_sampling > 0,
        hoist_input=hoists_input(config.hoist_input),
        output=config.output,
        levels=config.levels,
        quantisation=config.quantisation,
        predictor_units=config.predictor_units,
        predictor_window=config.predictor_window,
        input_embedding=config.input_embedding,
        top_units=config.top_units,
        top_frame=config.top_frame,
    )


def newer_message(version):
    return (
        f"made by a newer speechgen (model format {version!r}; this version reads format "
        f"{FORMAT_VERSION} and older); upgrade speechgen to use it"
    )


