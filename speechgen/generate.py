"""Free-running generation: prime the state with real audio, then feed predictions back.

Priming runs the real audio through a batch-1 copy of the model teacher-forced (one
call over all priming steps), which leaves the LSTM state where training left it at
that point of a stream. Free-running then repeats: predict ``hop`` samples from the
last ``window`` samples, append them, slide the window. The loop runs as a compiled
``tf.while_loop`` over model steps (not a Python loop of ``model.predict`` calls),
chunk by chunk so progress can be shown; the state carries across chunks, so any
length can be generated.
"""

import time

import numpy as np


def prime_steps(n_samples, window, hop):
    """How many whole steps a prime of ``n_samples`` samples gives (0 if too short)."""
    return 0 if n_samples < window else (n_samples - window) // hop + 1


class Generator:
    """Compiled free-running generation from one model.

    Args:
        model: a trained :class:`speechgen.model.SpeechRNN` (any batch size; a batch-1
            copy is made).
    """

    def __init__(self, model):
        import tensorflow as tf

        self.model = model.with_batch_size(1) if model.batch_size != 1 else model
        self.window, self.hop = model.window, model.hop
        net, hop = self.model, self.hop

        def run(window, n_steps):
            # window: (window,) float32; returns the new window and (n_steps, hop).
            outputs = tf.TensorArray(tf.float32, size=n_steps)

            def body(i, window, outputs):
                y = net(window[None, None, :], training=False)[0, 0]
                outputs = outputs.write(i, y)
                return i + 1, tf.concat([window[hop:], y], axis=0), outputs

            _, window, outputs = tf.while_loop(
                lambda i, *_: i < n_steps, body, (tf.constant(0), window, outputs)
            )
            return window, outputs.stack()

        self._run = tf.function(run, reduce_retracing=True)
        self._prime = tf.function(lambda x: net(x, training=False))

    def prime(self, audio):
        """Run normalised ``audio`` (1-D, >= window samples) teacher-forced.

        Returns:
            ``(window, first)``: the window for the next step, and the prediction of the
            ``hop`` samples that follow the used prime (the first generated samples).
            Only the last ``(steps - 1) * hop + window`` samples are used.
        """
        import tensorflow as tf

        steps = prime_steps(len(audio), self.window, self.hop)
        used = np.asarray(audio[len(audio) - ((steps - 1) * self.hop + self.window) :], np.float32)
        self.model.reset_rnn_states()
        frames = tf.signal.frame(used, self.window, self.hop)[None]
        first = self._prime(frames)[0, -1].numpy()
        window = np.concatenate([used[len(used) - self.window + self.hop :], first])
        return window.astype(np.float32), first

    def free_run(self, window, n_steps, chunk_steps=None, progress=None):
        """Generate ``n_steps`` steps after ``window``; returns ``(n_steps * hop,)``.

        Args:
            window: the current window, (window,) float32 normalised.
            n_steps: steps to generate.
            chunk_steps: steps per compiled call (progress granularity).
            progress: called as ``progress(done_steps, n_steps, elapsed_seconds)``.
        """
        chunk_steps = chunk_steps or max(1, n_steps // 20)
        pieces, done, started = [], 0, time.perf_counter()
        while done < n_steps:
            n = min(chunk_steps, n_steps - done)
            window, out = self._run(window, n)
            pieces.append(out.numpy().reshape(-1))
            done += n
            if progress:
                progress(done, n_steps, time.perf_counter() - started)
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def generate(self, prime, n_samples, progress=None):
        """Prime with ``prime``, then return ``n_samples`` generated samples (normalised)."""
        window, first = self.prime(prime)
        n_steps = -(-max(0, n_samples - self.hop) // self.hop)
        rest = self.free_run(window, n_steps, progress=progress)
        return np.concatenate([first, rest])[:n_samples]
