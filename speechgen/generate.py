"""Free-running generation: prime the state with real audio, then feed predictions back.

Priming runs real audio through a copy of the model teacher-forced (one Keras call over
all priming steps), which leaves the LSTM state where training would have it at that
point of a stream. Free-running then repeats: predict ``hop`` samples from the last
``window`` samples (and the step's phones), append them, slide the window.

The free-running loop does not call the Keras model: it runs the same maths on the
model's weights (LSTM cells with gates i, f, c, o; the Dense output) inside one
``tf.while_loop`` compiled by XLA, for one stream or N streams at once. Calling a Keras
model per step costs far more than the arithmetic of a small LSTM (see
docs/design.md). Phone inputs enter the first layer as a precomputed per-phone gate
bias, so conditioning costs a gather, not a matmul. A test checks that the result
equals the Keras model stepped one call at a time.
"""

import time

import numpy as np

ACTIVATIONS = {"tanh": "tanh", "linear": None, "relu": "relu"}


def sequence_samples(window, hop, seq_len):
    """Samples in one training sequence of ``seq_len`` steps: the default prime length."""
    return (seq_len - 1) * hop + window


def prime_steps(n_samples, window, hop):
    """How many whole steps a prime of ``n_samples`` samples gives (0 if too short)."""
    return 0 if n_samples < window else (n_samples - window) // hop + 1


class Generator:
    """Compiled free-running generation for ``streams`` parallel streams.

    Args:
        model: a trained :class:`speechgen.model.SpeechRNN` (any batch size).
        streams: how many streams to generate at once (N).
        noise: std of Gaussian noise added to every prediction before it is fed back
            (normalised units; ``--temperature`` x the validation RMSE), 0 for none.
        seed: seeds that noise (the same seed gives the same audio).
    """

    def __init__(self, model, streams=1, noise=0.0, seed=0):
        import keras
        import tensorflow as tf

        self.model = model.with_batch_size(streams) if model.batch_size != streams else model
        self.streams, self.window, self.hop = streams, model.window, model.hop
        self.context = model.phone_context if model.phones else 0
        self.noise, self.seed = float(noise), int(seed)
        # keras.layers.LSTM, and with hoist_input the first layer's RNN of a
        # RecurrentOnlyLSTMCell (LSTM is an RNN).
        lstms = [l for l in self.model.layers if isinstance(l, keras.layers.RNN)]
        self._lstms = lstms
        dense = self.model.get_layer("next_samples")
        # (kernel, recurrent kernel, bias) per layer; the first layer's kernel is split
        # into its audio rows and a per-phone gate table.
        weights = [l.cell.get_weights() for l in lstms]
        if getattr(self.model, "hoist_input", False):
            # The first layer's input kernel is the Dense before its recurrence.
            weights[0] = [self.model.get_layer("lstm_0_input").kernel.numpy(), *weights[0]]
        self._cells = [tuple(tf.constant(w) for w in ws) for ws in weights]
        self._dense = tuple(tf.constant(w) for w in dense.get_weights())
        self._activation = ACTIVATIONS[model.output_activation]
        kernel = self._cells[0][0]
        self._audio_kernel = kernel[: self.window]
        self._phone_tables = self._phone_tables_of(kernel[self.window :]) if self.context else None
        self._loops = {}
        # Priming runs the Keras model once over the whole prime: compiled, since an
        # eager call over thousands of steps is far slower.
        self._teacher = tf.function(lambda inputs: self.model(inputs, training=False), reduce_retracing=True)

    def _phone_tables_of(self, rows):
        """One ``(n_phones, 4 * units)`` gate table per context position."""
        import tensorflow as tf

        encoder = self.model.get_layer("phone_encoding")
        n = len(self.model.phones)
        width = encoder.embedding or n
        tables = []
        for c in range(self.context):
            block = rows[c * width : (c + 1) * width]
            if encoder.embedding:
                vectors = tf.constant(encoder.table.embeddings.numpy())
                tables.append(tf.matmul(vectors, block))
            else:
                tables.append(block)  # one-hot: row p is phone p's contribution
        return tf.stack(tables)  # (context, n_phones, 4 * units)

    def _step(self, window, states, ids):
        """One model step for all streams. window (N, W); ids (N, C) or None."""
        import tensorflow as tf

        x, new_states = None, []
        for layer, ((kernel, recurrent, bias), (h, c)) in enumerate(zip(self._cells, states)):
            if layer == 0:
                z = tf.matmul(window, self._audio_kernel)
                if ids is not None:
                    for k in range(self.context):
                        z += tf.gather(self._phone_tables[k], ids[:, k])
            else:
                z = tf.matmul(x, kernel)
            z += tf.matmul(h, recurrent) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            x = tf.sigmoid(o) * tf.tanh(c)
            new_states.append((x, c))
        kernel, bias = self._dense
        y = tf.matmul(x, kernel) + bias
        if self._activation == "tanh":
            y = tf.tanh(y)
        elif self._activation == "relu":
            y = tf.nn.relu(y)
        return y, new_states

    def _loop(self, n_steps):
        """A compiled loop of exactly ``n_steps`` steps (XLA needs static sizes, so
        one is compiled per chunk length; :meth:`free_run` uses a single length)."""
        if n_steps in self._loops:
            return self._loops[n_steps]
        import tensorflow as tf

        hop, with_ids, noise = self.hop, bool(self.context), self.noise

        def run(window, states, ids, chunk):
            outputs = tf.TensorArray(tf.float32, size=n_steps)

            def body(i, window, states, outputs):
                y, states = self._step(window, states, ids[i] if with_ids else None)
                if noise:
                    # Stateless: step k of the run always gets the same draw for a seed.
                    step = chunk * n_steps + tf.cast(i, tf.int64)
                    seed = tf.stack([tf.constant(self.seed, tf.int64), step])
                    y += noise * tf.random.stateless_normal(tf.shape(y), seed)
                return i + 1, tf.concat([window[:, hop:], y], axis=1), states, outputs.write(i, y)

            _, window, states, outputs = tf.while_loop(
                lambda i, *_: i < n_steps, body, (tf.constant(0), window, states, outputs)
            )
            # (n_steps, N, hop) -> (N, n_steps * hop)
            out = tf.transpose(outputs.stack(), (1, 0, 2))
            return window, states, tf.reshape(out, (self.streams, n_steps * hop))

        self._loops[n_steps] = tf.function(run, jit_compile=True)
        return self._loops[n_steps]

    def prime(self, audio, phones=None):
        """Run normalised ``audio`` teacher-forced through the model.

        Args:
            audio: ``(samples,)`` or ``(N, samples)``, at least ``window`` samples.
            phones: the priming steps' phone ids, ``(steps, C)`` or ``(N, steps, C)``,
                for phone-conditioned models (steps as :func:`prime_steps` counts them).
        Returns:
            ``(window, first)``: each stream's next window ``(N, window)`` and the
            prediction of the ``hop`` samples after the used prime ``(N, hop)``.
            Only the last ``(steps - 1) * hop + window`` samples are used.
        """
        import tensorflow as tf

        audio = np.atleast_2d(np.asarray(audio, np.float32))
        steps = prime_steps(audio.shape[1], self.window, self.hop)
        used = audio[:, audio.shape[1] - ((steps - 1) * self.hop + self.window) :]
        self.model.reset_rnn_states()
        frames = tf.signal.frame(used, self.window, self.hop, axis=1)
        inputs = frames
        if self.context:
            ids = np.asarray(phones, np.int32).reshape(self.streams, -1, self.context)[:, -steps:]
            inputs = [frames, tf.constant(ids)]
        first = self._teacher(inputs)[:, -1].numpy()
        window = np.concatenate([used[:, used.shape[1] - self.window + self.hop :], first], axis=1)
        return window.astype(np.float32), first

    def free_run(self, window, n_steps, phones=None, chunk_steps=None, progress=None):
        """Generate ``n_steps`` steps after the primed state.

        Args:
            window: ``(N, window)`` from :meth:`prime`.
            phones: ``(n_steps, C)`` or ``(N, n_steps, C)`` phone ids of the steps.
            chunk_steps: steps per compiled call (progress granularity). Every call
                runs a whole chunk, and the surplus of the last one is dropped, so
                one compiled loop serves the whole run.
            progress: called as ``progress(done_steps, n_steps, elapsed_seconds)``.
        Returns:
            ``(N, n_steps * hop)`` float32, normalised.
        """
        import tensorflow as tf

        states = [tuple(tf.constant(v.numpy()) for v in layer.states) for layer in self._lstms]
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
        window = tf.constant(window, tf.float32)
        pieces, started = [], time.perf_counter()
        for k in range(n_chunks):
            window, states, out = loop(
                window, states, tf.constant(ids[k * chunk : (k + 1) * chunk]), tf.constant(k, tf.int64)
            )
            pieces.append(out.numpy())
            if progress:
                progress(min(n_steps, (k + 1) * chunk), n_steps, time.perf_counter() - started)
        return np.concatenate(pieces, axis=1)[:, : n_steps * self.hop]

    def generate(self, prime, n_samples, phones=None, progress=None):
        """Prime, then return ``n_samples`` generated samples per stream (normalised).

        Args:
            prime: ``(samples,)`` or ``(N, samples)`` normalised priming audio.
            phones: phone ids for the priming steps followed by the generated steps,
                ``(prime_steps + gen_steps, C)`` (or with a leading N).
        Returns:
            ``(n_samples,)`` for one stream, else ``(N, n_samples)``.
        """
        prime = np.atleast_2d(prime)
        steps = prime_steps(prime.shape[1], self.window, self.hop)
        n_steps = -(-max(0, n_samples - self.hop) // self.hop)
        prime_ids = gen_ids = None
        if self.context:
            ids = np.asarray(phones, np.int32).reshape(self.streams, -1, self.context)
            prime_ids, gen_ids = ids[:, :steps], ids[:, steps : steps + n_steps]
        window, first = self.prime(prime, prime_ids)
        rest = self.free_run(window, n_steps, gen_ids, progress=progress)
        out = np.concatenate([first, rest], axis=1)[:, :n_samples]
        return out[0] if self.streams == 1 else out
