"""Keras 3 ``fit`` under ``tf.distribute.MultiWorkerMirroredStrategy`` (TensorFlow only):
two overrides that :class:`speechgen.model.SpeechRNN` mixes in (docs/distributed.md)."""

import keras

from . import keras_private


def in_multi_worker_mode(strategy):
    """True under a MultiWorkerMirroredStrategy spanning more than one worker."""
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and keras_private.spans_workers(strategy)


class MultiWorkerFit:
    """Mixed into a ``keras.Model`` before it: fixes Keras' multi-worker ``fit``."""

    def _multi_worker(self):
        return in_multi_worker_mode(keras_private.distribute_strategy(self))

    def _for_multi_worker(self, logs):
        """Across workers Keras reduces each step's logs with ``MEAN`` over ``axis=0``,
        which a scalar does not have; give every log one axis of length 1 there."""
        if not self._multi_worker():
            return logs
        return {k: keras.ops.reshape(v, (1,)) for k, v in logs.items()}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # keras-team/keras#20585: before fitting, Keras averages the first distributed
        # batch over replicas *eagerly*, which MultiWorkerMirroredStrategy cannot do
        # outside a tf.function. Only its shapes matter, so build from this worker's own
        # first replica batch instead.
        if not self._multi_worker() or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        import tensorflow as tf

        strategy = keras_private.distribute_strategy(self)
        for _, _, it in iterator:
            data_batch = keras.tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v,
                next(it),
            )
            break
        with strategy.scope():
            keras_private.symbolic_build(self, data_batch)
