"""Free-running generation: prime the state with real audio, then feed samples back.

Priming runs real audio through a copy of the model teacher-forced (one Keras call over
every step whose targets lie inside the prime), which leaves the LSTM state where
training would have it at that point of a stream. Free-running then repeats: from the
last ``window`` samples (and the step's phones), the head draws the next ``hop``
samples (a categorical draw at a temperature, or the MSE prediction plus optional
noise), they are appended and the window slides. A tiered model draws its ``hop``
samples one at a time: the frame tier runs once per step, its upsampled output
conditions the sample-level predictor, which reads the samples drawn so far. An upper
frame tier (``top_units``) runs once per ``top_ratio`` steps, at the steps that start
one of its frames, and its upsampled output (one vector per lower step, carried in the
loop) joins the frame tier's input.

The loop is one ``keras.ops.fori_loop``, compiled (XLA under TensorFlow, ``jax.jit``
under JAX: :func:`compiled`, the only backend-specific line), for one stream or N
streams at once, and it calls **the model's own layers and cells**
(``layer.cell(x, states)``, the phone encoding, the predictor's Dense layers, the
head's output layer): it computes the model's maths by construction, not a re-typed
copy of it. Draws are counter-based (:mod:`speechgen.model.draws`), so the same seed
gives the same audio compiled or stepped, in one piece or several, under TensorFlow or
JAX. A test pins the loop against the Keras model stepped one call at a time with the
same seeds, for every head, and another the JAX backend against TensorFlow.

One exact rewrite makes it faster (``lookup``, on by default): with an input embedding,
the predictor's first layer on the ``k`` embedded samples, ``concat_j E[c_j] @ W + b``,
is ``sum_j T_j[c_j] + b`` with tables ``T_j = E @ W_j`` (``W_j``: the rows of ``W`` that
read position ``j``) computed once per run, so each sample costs ``k`` row lookups
instead of a ``k*d x units`` product; the drawn class ids are carried, not re-quantised.
The tables are an argument of the compiled loop, not a constant traced into it, so
after the model's weights change (listening during training) :meth:`Generator.refresh`
recomputes them and the same compiled loop runs on.
"""

import time

import keras
import numpy as np

from .data.framing import Framing
from .model import draws

ops = keras.ops


def compiled(fn):
    """``fn`` compiled for the backend: XLA through ``tf.function(jit_compile=True)``
    under TensorFlow, ``jax.jit`` under JAX (the loop itself is ``keras.ops``)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def draw_key(seed, step, sub=0):
    """The key of the draws of step ``step`` (and sample ``sub`` of a tiered model's
    step) of a run seeded ``seed``: the same key always gives the same numbers."""
    return draws.key(seed, step, sub)


class Generator:
    """Compiled free-running generation for ``streams`` parallel streams.

    Args:
        model: a trained :class:`speechgen.model.SpeechRNN` (any batch size).
        streams: how many streams to generate at once (N).
        temperature: categorical heads: the softmax temperature (1: the model's own
            distribution; 0: always the most likely class). Ignored by MSE heads.
        noise: MSE heads: std of Gaussian noise added to every prediction before it
            is fed back (normalised units; ``sample --noise`` x the validation RMSE).
        seed: seeds every draw (the same seed gives the same audio).
        lookup: with an input embedding (float32), run the predictor's first layer as
            per-position table lookups (exact up to float summation order). The
            tables are made from the weights at construction; after the weights
            change, call :meth:`refresh`.
    """

    def __init__(self, model, streams=1, noise=0.0, seed=0, temperature=1.0, lookup=True):
        self.model = model.with_batch_size(streams) if model.batch_size != streams else model
        self.streams, self.window, self.hop = streams, model.window, model.hop
        self.framing = Framing.of(model)
        self.head = self.model.head
        self.context = model.phone_context if model.phones else 0
        self.noise, self.seed, self.temperature = float(noise), int(seed), float(temperature)
        names = {l.name for l in self.model.layers}
        get = self.model.get_layer
        # The frame tier's LSTMs, then the upper tier's: the order their states are carried.
        self._lower = [get(f"lstm_{i}") for i in range(len(self.model.units))]
        self._upper = [get(f"top_lstm_{i}") for i in range(len(getattr(self.model, "top_units", None) or []))]
        self._lstms = self._lower + self._upper
        self.ratio = getattr(self.model, "top_ratio", 1)
        if self._upper:
            self._upper_out = get("top_upsample")
        self._hoist = get("lstm_0_input") if "lstm_0_input" in names else None
        self._phones = get("phone_encoding") if self.context else None
        self._out = get("next_samples")
        self.tiered = bool(self.model.predictor_units)
        self._table = None
        if self.tiered:
            self._upsample = get("upsample")
            self._embed = get("input_embedding") if "input_embedding" in names else None
            self._predictor_in = get("predictor_input")
            self._predictor_relu = get("predictor_relu")
            self._predictor = [get(f"predictor_{i}") for i in range(1, len(self.model.predictor_units))]
            if lookup and self._embed is not None and self._predictor_in.compute_dtype == "float32":
                self._table = self._lookup_table()
        self._loops = {}
        self._teacher = compiled(lambda inputs: self.model(inputs, training=False)) \
            if keras.backend.backend() == "tensorflow" else (lambda inputs: self.model(inputs, training=False))

    def refresh(self):
        """The model's weights have changed (``set_weights``): recompute what the
        generator derives from them, the lookup tables. The compiled loops are kept:
        under TensorFlow they read the layers' weights as variables, and the tables
        are their argument. (Under JAX, ``jax.jit`` traces the weights in as
        constants: there, build a new Generator instead; training, the one user of
        this, runs under TensorFlow.)"""
        if self._table is not None:
            self._table = self._lookup_table()

    def _lookup_table(self):
        """``(k * levels, units)`` float32: row ``j * levels + c`` is class ``c``'s
        embedding at predictor position ``j`` times the rows of ``predictor_input``'s
        kernel that read position ``j``."""
        k, levels = self.model.predictor_window, self.head.levels
        embedding = ops.convert_to_numpy(self._embed.embeddings).astype(np.float64)  # (levels, d)
        kernel = ops.convert_to_numpy(self._predictor_in.kernel).astype(np.float64)  # (k * d, units)
        per_position = kernel.reshape(k, embedding.shape[1], -1)
        table = np.einsum("ld,kdu->klu", embedding, per_position).reshape(k * levels, -1)
        return ops.convert_to_tensor(table.astype(np.float32))

    # --- one step, from the model's own layers ---

    def _encode_phones(self, x, ids):
        return ops.concatenate([x, ops.cast(self._phones(ids[:, None, :])[:, 0], x.dtype)], axis=-1)

    @staticmethod
    def _cells(lstms, x, states):
        """Run ``x`` up a stack of LSTM layers' cells: -> ``(h, new states)``."""
        new_states = []
        for layer, state in zip(lstms, states):
            dtype = layer.cell.compute_dtype
            x, state = layer.cell(ops.cast(x, dtype), [ops.cast(s, dtype) for s in state], training=False)
            new_states.append(tuple(ops.cast(s, "float32") for s in state))
        return x, new_states

    def _tier(self, window, states, ids, upper=None):
        """The LSTM stack for all streams: ``window (N, W)``, ``ids (N, C)`` or None,
        the upper tier's vector for this step ``upper (N, units[0])`` or None ->
        ``(h (N, units[-1]), new states)``."""
        x = window
        if ids is not None:
            x = self._encode_phones(x, ids)
        if upper is not None:
            x = ops.concatenate([x, upper], axis=-1)
        if self._hoist is not None:
            x = self._hoist(x)
        return self._cells(self._lower, x, states)

    def _upper_tier(self, window, states, ids):
        """The upper tier's step: its frame (the newest ``top_frame`` samples of
        ``window``) and phones -> ``(cond (N, ratio, units[0]) float32, new states)``."""
        x = window[:, self.window - self.model.top_frame :]
        if ids is not None:
            x = self._encode_phones(x, ids)
        x, new_states = self._cells(self._upper, x, states)
        cond = ops.cast(self._upper_out(x), "float32")
        return ops.reshape(cond, (self.streams, self.ratio, self.model.units[0])), new_states

    def _draw(self, y, hop, key):
        """Head output layer values ``y (N, hop * width)`` -> drawn samples ``(N, hop)``."""
        outputs = self.head.shape_outputs(y, hop)
        return ops.cast(self.head.sample(outputs, key, self.temperature, self.noise), "float32")

    def _predictor_first(self, recent, classes, table):
        """The predictor's first layer (before the conditioning and ReLU) on the last
        ``k`` samples ``recent (N, k)`` (or their class ids ``classes (N, k)``), by
        the lookup ``table`` when the generator has one."""
        if self._table is not None:
            k, levels = self.model.predictor_window, self.head.levels
            rows = ops.take(table, classes + ops.arange(k, dtype="int32") * levels, axis=0)  # (N, k, units)
            return ops.sum(rows, axis=1) + ops.cast(self._predictor_in.bias, "float32")
        z = recent
        if self._embed is not None:
            z = ops.reshape(self._embed(classes), (self.streams, -1))
        return self._predictor_in(z)

    def _step(self, window, states, ids, step, table):
        """One model step: ``window (N, W)`` -> ``(samples (N, hop), new states)``
        (``table``: the lookup tables, or a placeholder without them).

        With an upper tier, ``states`` ends with its LSTMs' states and ``(cond,)``, the
        upsampled vectors of the current upper step; the upper tier runs (and ``cond``
        is replaced) at the steps that start one of its frames."""
        if self._upper:
            n = len(self._lower)
            lower, above, cond = states[:n], list(states[n:-1]), states[-1][0]
            q = ops.mod(step, self.ratio)
            cond, above = ops.cond(
                ops.equal(q, 0), lambda: self._upper_tier(window, above, ids), lambda: (cond, above)
            )
            # Phones reach the upper tier only.
            h, lower = self._tier(window, lower, None, ops.take(cond, q, axis=1))
            states = lower + list(above) + [(cond,)]
        else:
            h, states = self._tier(window, states, ids)
        if not self.tiered:
            return self._draw(self._out(h), self.hop, draw_key(self.seed, step)), states
        k, units = self.model.predictor_window, self.model.predictor_units[0]
        cond = ops.reshape(self._upsample(h), (self.streams, self.hop, units))
        recent, drawn = window[:, self.window - k :], []
        classes = ops.cast(self.head.targets(recent, ops=ops), "int32") if self._embed is not None else None
        # Unrolled over the hop samples (a static count): each reads the ones before it.
        for j in range(self.hop):
            z = self._predictor_first(recent, classes, table)
            z = self._predictor_relu(z + ops.cast(cond[:, j], z.dtype))
            for layer in self._predictor:
                z = layer(z)
            y = self.head.shape_outputs(self._out(z), 1)
            key = draw_key(self.seed, step, j)
            if classes is not None:
                # Carry the drawn class ids (decoding then quantising a class is exact).
                drawn_classes = self.head.sample_classes(y, key, self.temperature)  # (N, 1)
                sample = ops.cast(self.head.decode(drawn_classes, ops=ops), "float32")
                classes = ops.concatenate([classes[:, 1:], drawn_classes], axis=1)
            else:
                sample = ops.cast(self.head.sample(y, key, self.temperature, self.noise), "float32")
            drawn.append(sample)
            recent = ops.concatenate([recent[:, 1:], sample], axis=1)
        return ops.concatenate(drawn, axis=1), states

    def _loop(self, n_steps):
        """A compiled loop of exactly ``n_steps`` steps (compilers need static sizes, so
        one is compiled per chunk length; :meth:`free_run` uses a single length)."""
        if n_steps in self._loops:
            return self._loops[n_steps]
        hop, with_ids = self.hop, bool(self.context)

        def run(window, states, ids, first_step, table):
            def body(i, carry):
                window, states, out = carry
                step = first_step + i
                y, states = self._step(window, states, ids[i] if with_ids else None, step, table)
                out = ops.slice_update(out, (0, i * hop), y)
                return ops.concatenate([window[:, hop:], y], axis=1), states, out

            out = ops.zeros((self.streams, n_steps * hop), "float32")
            return ops.fori_loop(0, n_steps, body, (window, states, out))

        self._loops[n_steps] = compiled(run)
        return self._loops[n_steps]

    # --- priming and running ---

    def prime(self, audio, phones=None):
        """Run normalised ``audio`` teacher-forced through the model.

        Args:
            audio: ``(samples,)`` or ``(N, samples)``, at least ``window`` samples.
            phones: the priming steps' phone ids, ``(steps, C)`` or ``(N, steps, C)``,
                for phone-conditioned models (steps as ``Framing.steps`` counts them).
        Returns:
            ``(window, steps)``: each stream's last ``window`` samples ``(N, window)``,
            from which free-running continues, and the number of priming steps
            (``Framing.prime_steps``: with an upper tier, whole upper steps, the
            latest). Only the last ``steps * hop + window`` samples are used.
        """
        audio = np.atleast_2d(np.asarray(audio, np.float32))
        given = self.framing.steps(audio.shape[1])
        steps = self.framing.prime_steps(audio.shape[1])
        used = audio[:, audio.shape[1] - (steps * self.hop + self.window) :]
        self.model.reset_rnn_states()
        if steps:
            inputs = ops.convert_to_tensor(self.framing.step_inputs(used))
            if self.context:
                ids = np.asarray(phones, np.int32).reshape(self.streams, -1, self.context)[:, given - steps : given]
                inputs = [inputs, ops.convert_to_tensor(ids)]
            self._teacher(inputs)
        return used[:, used.shape[1] - self.window :].astype(np.float32), steps

    def free_run(self, window, n_steps, phones=None, chunk_steps=None, progress=None, first_step=0):
        """Generate ``n_steps`` steps after the primed state.

        Args:
            window: ``(N, window)`` from :meth:`prime`.
            phones: ``(n_steps, C)`` or ``(N, n_steps, C)`` phone ids of the steps.
            chunk_steps: steps per compiled call (progress granularity). Every call
                runs a whole chunk, and the surplus of the last one is dropped, so
                one compiled loop serves the whole run.
            progress: called as ``progress(done_steps, n_steps, elapsed_seconds)``.
            first_step: the number of the first step (seeds: a run continued in
                pieces draws what one run would).
        Returns:
            ``(N, n_steps * hop)`` float32, normalised.
        """
        states = [tuple(ops.convert_to_tensor(ops.convert_to_numpy(v), "float32") for v in layer.states)
                  for layer in self._lstms]
        if self._upper:
            if first_step % self.ratio:
                raise ValueError(f"first_step {first_step} must start an upper-tier step (a multiple of {self.ratio})")
            # Replaced at step 0, which starts an upper step (a prime runs whole upper steps).
            states.append((ops.zeros((self.streams, self.ratio, self.model.units[0]), "float32"),))
        if n_steps <= 0:
            return np.zeros((self.streams, 0), np.float32)
        chunk = min(n_steps, chunk_steps or max(256, -(-n_steps // 20)))
        n_chunks = -(-n_steps // chunk)
        ids = np.zeros((n_chunks * chunk, 0, 0), np.int32)
        if self.context:
            ids = np.asarray(phones, np.int32).reshape(self.streams, n_steps, self.context)
            ids = np.transpose(ids, (1, 0, 2))  # (steps, N, C)
            # The surplus steps of the last chunk repeat the last phone; they are dropped.
            ids = np.concatenate([ids, np.repeat(ids[-1:], n_chunks * chunk - n_steps, axis=0)])
        loop = self._loop(chunk)
        window = ops.convert_to_tensor(window, "float32")
        table = self._table if self._table is not None else ops.zeros((0,), "float32")
        pieces, started = [], time.perf_counter()
        for c in range(n_chunks):
            window, states, out = loop(
                window, states, ops.convert_to_tensor(ids[c * chunk : (c + 1) * chunk]),
                ops.convert_to_tensor(np.int32(first_step + c * chunk)), table,
            )
            pieces.append(ops.convert_to_numpy(out))
            if progress:
                progress(min(n_steps, (c + 1) * chunk), n_steps, time.perf_counter() - started)
        return np.concatenate(pieces, axis=1)[:, : n_steps * self.hop]

    def generate(self, prime, n_samples, phones=None, progress=None):
        """Prime, then return ``n_samples`` generated samples per stream (normalised).

        Args:
            prime: ``(samples,)`` or ``(N, samples)`` normalised priming audio.
            phones: phone ids for the priming steps followed by the generated steps,
                ``(prime steps + gen_steps, C)`` (or with a leading N).
        Returns:
            ``(n_samples,)`` for one stream, else ``(N, n_samples)``.
        """
        prime = np.atleast_2d(prime)
        steps = self.framing.steps(prime.shape[1])
        n_steps = -(-max(0, n_samples) // self.hop)
        prime_ids = gen_ids = None
        if self.context:
            ids = np.asarray(phones, np.int32).reshape(self.streams, -1, self.context)
            prime_ids, gen_ids = ids[:, :steps], ids[:, steps : steps + n_steps]
        window, _ = self.prime(prime, prime_ids)
        out = self.free_run(window, n_steps, gen_ids, progress=progress)[:, :n_samples]
        return out[0] if self.streams == 1 else out
