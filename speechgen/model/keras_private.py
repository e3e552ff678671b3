"""Every use of a private Keras API, in one place, with the reason (tested with Keras
3.15.1 on TensorFlow 2.21; ``setup.cfg`` pins the tested range, and a Keras upgrade
should start by reading this file).

- ``Model._symbolic_build``: creates the compiled metrics' variables from a batch's
  shapes before the first step, so a mid-epoch checkpoint's metric accumulators can be
  put back (:meth:`SpeechRNN.build_metrics`), and builds a multi-worker model from one
  replica's batch (keras-team/keras#20585).
- ``Model._maybe_symbolic_build`` (overridden in :class:`SpeechRNN`): the eager
  build-time reduce that MultiWorkerMirroredStrategy cannot do.
- ``Model._distribute_strategy``: the strategy a model was built under (multi-worker
  patches only).
- ``Layer._flatten_layers`` and ``Layer._seed_generators``: every seed generator of the
  model (dropout, noise), whose states Keras does not save; checkpoints save them so a
  resumed run draws the random numbers an uninterrupted one would.
- ``Layer._trainable_variables`` / ``_non_trainable_variables``: the model's own
  variables (not its layers') in Keras' save order, for :meth:`load_own_variables`.
- TensorFlow's ``strategy.extended._in_multi_worker_mode()``: whether a
  MultiWorkerMirroredStrategy spans more than one worker (tf.distribute has no public
  query; a one-worker cluster needs none of the multi-worker patches).
"""


def symbolic_build(model, data_batch):
    model._symbolic_build(data_batch=data_batch)


def distribute_strategy(model):
    return getattr(model, "_distribute_strategy", None)


def seed_generators(model):
    """Every layer's seed generators, in a fixed order."""
    layers = list(model._flatten_layers(include_self=False))
    return [g for layer in layers for g in getattr(layer, "_seed_generators", [])]


def spans_workers(strategy):
    return strategy.extended._in_multi_worker_mode()


def own_variables(model):
    """The model object's own variables in the order Keras saves them."""
    return model._trainable_variables + model._non_trainable_variables
