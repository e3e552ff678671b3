"""What a checkpoint holds besides the weights: the random-number state of every seed
generator (so a resumed run draws what an uninterrupted one would) and, in a mid-epoch
checkpoint, the LSTM state of every stream and the metric accumulators.
:class:`speechgen.model.SpeechRNN` mixes it in."""

import contextlib

import keras
import numpy as np

from ..errors import SpeechgenError
from . import keras_private


class CheckpointState:
    """Mixed into a ``keras.Model`` before it (needs ``_sampling_seed`` and
    ``_rnn_state_variables`` from the model)."""

    def _rng_states(self):
        """The state variables of every seed generator (dropout, input noise,
        scheduled sampling) in a fixed order. Keras saves none of them."""
        generators = keras_private.seed_generators(self)
        return [g.state for g in [*generators, self._sampling_seed]]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for i, state in enumerate(self._rng_states()):
            store[f"rng_{i}"] = keras.ops.convert_to_numpy(state)
        if getattr(self, "_saving_mid_epoch", False):
            # A mid-epoch checkpoint also holds what the rest of the epoch continues
            # from: the LSTM state of every stream and the running means of the loss
            # and metrics. Other saves leave them out (a new epoch starts from zero).
            for i, v in enumerate(self._rnn_state_variables()):
                store[f"rnn_state_{i}"] = keras.ops.convert_to_numpy(v)
            for i, v in enumerate(self.metrics_variables):
                store[f"metric_{i}"] = keras.ops.convert_to_numpy(v)

    def load_own_variables(self, store):
        keys = list(store.keys())
        rng = {k: store[k] for k in keys if k.startswith("rng_")}
        own = keras_private.own_variables(self)
        for i, v in enumerate(own):
            v.assign(store[f"{i}"])
        states = self._rng_states()
        if len(rng) == len(states):  # else a file saved without them: keep fresh seeds
            for i, v in enumerate(states):
                v.assign(rng[f"rng_{i}"])
        # Kept aside until fit has built the metrics and begun the epoch
        # (restore_mid_epoch_state); None for every file but a mid-epoch checkpoint.
        mid = None
        if any(k.startswith("rnn_state_") for k in keys):
            mid = tuple(
                [np.array(store[f"{prefix}{i}"]) for i in range(sum(k.startswith(prefix) for k in keys))]
                for prefix in ("rnn_state_", "metric_")
            )
        object.__setattr__(self, "_mid_epoch_state", mid)

    @contextlib.contextmanager
    def saving_mid_epoch(self):
        """Within this block, ``save`` also writes the LSTM state and the metric
        accumulators (a mid-epoch checkpoint)."""
        object.__setattr__(self, "_saving_mid_epoch", True)
        try:
            yield
        finally:
            object.__setattr__(self, "_saving_mid_epoch", False)

    def build_metrics(self, data_spec):
        """Create the compiled metrics' variables now, from the shapes of a batch
        (``tf.data`` ``element_spec``); Keras would create them at the first training
        step, too late for :meth:`restore_mid_epoch_state`."""
        keras_private.symbolic_build(self, data_spec)

    def restore_mid_epoch_state(self):
        """Put back the LSTM state and metric accumulators a mid-epoch checkpoint was
        loaded with. Call it at the start of the continued epoch, after Keras has
        reset the metrics.

        Raises:
            SpeechgenError: the model was not loaded from a mid-epoch checkpoint, or
            the checkpoint's state does not fit this model.
        """
        saved = getattr(self, "_mid_epoch_state", None)
        if saved is None:
            raise SpeechgenError("the checkpoint holds no mid-epoch state (LSTM state, metric accumulators)")
        for values, variables in zip(saved, (self._rnn_state_variables(), self.metrics_variables)):
            if len(values) != len(variables) or any(
                tuple(a.shape) != tuple(v.shape) for a, v in zip(values, variables)
            ):
                raise SpeechgenError("the checkpoint's mid-epoch state does not fit the model; damaged checkpoint")
            for v, a in zip(variables, values):
                v.assign(a)
        object.__setattr__(self, "_mid_epoch_state", None)
