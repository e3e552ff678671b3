"""Training on several devices with TensorFlow's own distribution.

``mirrored`` uses ``tf.distribute.MirroredStrategy`` over the local devices (GPUs, or
the logical CPUs when there is no GPU). ``multi-worker`` uses
``tf.distribute.MultiWorkerMirroredStrategy`` across the hosts named in ``TF_CONFIG``;
Keras 3's ``fit`` needs two workarounds under it, which live in
``SpeechRNN`` (see :func:`speechgen.model.multi_worker.in_multi_worker_mode` and docs/distributed.md). Only the chief
worker writes the run directory; the others write into a throwaway folder
(:func:`is_chief`).

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

import json
import os

from ..errors import UsageError

STRATEGIES = ("none", "mirrored", "multi-worker")


def cluster_spec():
    """``(task_type, task_index, has_chief)`` from ``TF_CONFIG``, checked.

    Raises:
        UsageError: TF_CONFIG missing, not JSON, or not naming this task in its cluster.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UsageError("--strategy multi-worker: set TF_CONFIG to name the cluster and this worker "
                         "(see docs/distributed.md)")
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = task["type"], int(task["index"])
        hosts = cluster[task_type]
        if not isinstance(hosts, list) or not 0 <= index < len(hosts):
            raise ValueError
        has_chief = "chief" in cluster
    except (ValueError, KeyError, TypeError):
        raise UsageError('TF_CONFIG: expected {"cluster": {"worker": ["host:port", ...]}, '
                         '"task": {"type": "worker", "index": N}} naming this task') from None
    return task_type, index, has_chief


def is_chief(strategy):
    """Whether this process writes the run: always, except the non-chief workers of a
    multi-worker cluster (the chief is task ``chief``, or ``worker`` 0 without one)."""
    from ..model.multi_worker import in_multi_worker_mode

    return not in_multi_worker_mode(strategy) or chief_in_tf_config()


def chief_in_tf_config():
    """Whether ``TF_CONFIG`` names this process the chief of its cluster."""
    task_type, index, has_chief = cluster_spec()
    return task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)


def make_strategy(name):
    """The ``tf.distribute`` strategy for ``name`` (None for ``none``)."""
    if name in (None, "none"):
        return None
    if name == "multi-worker":
        cluster_spec()  # a one-line error for a bad TF_CONFIG, before TensorFlow starts on it
        import tensorflow as tf

        # Collectives over gRPC between the workers; each worker's local GPUs (or its CPU)
        # are its replicas.
        return tf.distribute.MultiWorkerMirroredStrategy()
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
    # In a tf.function: across workers an eager strategy.run is slow (and warns).
    step = getattr(model, "_reset_rows_step", None)
    if step is None:
        step = tf.function(lambda m: strategy.run(model.reset_rnn_rows, args=(m,)))
        object.__setattr__(model, "_reset_rows_step", step)  # not a Keras-tracked attribute
    step(masks)
