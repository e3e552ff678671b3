"""Training on several devices with TensorFlow's own distribution.

``mirrored`` uses ``tf.distribute.MirroredStrategy`` over the local devices (GPUs, or
the logical CPUs when there is no GPU). Several machines (``MultiWorkerMirroredStrategy``)
are not supported yet: Keras 3's ``fit`` fails under that strategy (see
docs/distributed.md).

Truncated BPTT needs every replica to keep the LSTM state of its own streams. Keras
stateful layers built with the *global* batch size fail under a strategy (the state's
batch does not match a replica's); built with the *per-replica* batch size, each
replica's copy of the state variable holds the state of the rows that replica
receives, which is exactly the per-replica state we need. The model is therefore
built with ``batch_size / replicas`` rows while the pipeline still yields global
batches in TBPTT order, which the strategy splits into consecutive row blocks
(replica r gets rows ``r*B/R ... (r+1)*B/R - 1``). Resets of single rows (a new
utterance) are sent to the replica holding that row (:func:`reset_rows`).
"""

from .errors import UsageError

STRATEGIES = ("none", "mirrored")


def make_strategy(name):
    """The ``tf.distribute`` strategy for ``name`` (None for ``none``)."""
    if name in (None, "none"):
        return None
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        # On a CPU-only host, all logical CPUs (one unless configured) are the replicas.
        devices = [d.name for d in gpus] or [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices)
    raise UsageError(f"--strategy {name}: expected one of {', '.join(STRATEGIES)}")


def per_replica_batch(batch_size, strategy):
    """Rows each replica's model holds; the global batch must split evenly."""
    replicas = strategy.num_replicas_in_sync if strategy else 1
    if batch_size % replicas:
        raise UsageError(
            f"config: batch_size {batch_size} does not split over {replicas} replicas; use a multiple of {replicas}"
        )
    return batch_size // replicas


def reset_rows(model, fresh):
    """Zero the state of the global rows where ``fresh`` is True, on whichever replica
    holds them (or directly when not distributed)."""
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if replicas == 1:
        model.reset_rnn_rows(fresh)
        return
    per = len(fresh) // replicas

    def local_mask(ctx):
        r = ctx.replica_id_in_sync_group
        return tf.constant(fresh[r * per : (r + 1) * per])

    masks = strategy.experimental_distribute_values_from_function(local_mask)
    strategy.run(model.reset_rnn_rows, args=(masks,))
