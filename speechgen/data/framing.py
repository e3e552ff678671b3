"""How a stretch of samples becomes model steps: one object for pipeline, generation,
reconstruction, sampling and drift.

A *step* ``t`` of a stretch ``x`` predicts the ``hop`` samples
``x[window + t*hop : window + (t+1)*hop]`` from the ``window`` samples before them.
A tiered model (a frame tier above a sample-level predictor) also reads, teacher-forced,
the first ``hop - 1`` of the samples it predicts (each sample's predictor sees the
samples before it within the frame): its ``lookahead`` is ``hop - 1``. So step ``t``'s
input is ``x[t*hop : t*hop + window + lookahead]`` and its target
``x[t*hop + window : t*hop + window + hop]``; only the first ``window`` input samples
reach the frame tier.

A model with an upper frame tier (``top_units``) steps it once per ``ratio = top_frame //
hop`` steps, reading the newest ``top_frame`` samples of every ``ratio``-th step's input;
stepping the model in calls of whole upper steps (multiples of ``ratio``) equals one call,
so a prime runs whole upper steps (:meth:`Framing.prime_steps`).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Framing:
    """Attributes (samples, steps):
        window: samples before a step's targets that the model reads.
        hop: samples predicted per step.
        seq_len: steps per truncated-BPTT chunk.
        lookahead: target samples also read as input (``hop - 1`` for tiered models).
        ratio: steps per upper-tier step (1 without an upper tier).
    """

    window: int
    hop: int
    seq_len: int = 1
    lookahead: int = 0
    ratio: int = 1

    @classmethod
    def of(cls, model_or_config, seq_len=None):
        """The framing of a :class:`speechgen.model.SpeechRNN` or a config."""
        m = model_or_config
        tiered = bool(getattr(m, "predictor_units", None))
        if seq_len is None:
            seq_len = getattr(m, "seq_len", None) or (getattr(m, "train_config", None) or {}).get("seq_len", 1)
        ratio = m.top_frame // m.hop if getattr(m, "top_units", None) else 1
        return cls(m.window, m.hop, int(seq_len), m.hop - 1 if tiered else 0, ratio)

    @property
    def input_length(self):
        """Samples in one step's input."""
        return self.window + self.lookahead

    @property
    def block(self):
        """Samples one chunk of ``seq_len`` steps reads (inputs and targets)."""
        return self.seq_len * self.hop + self.window

    @property
    def span(self):
        """Samples one chunk advances."""
        return self.seq_len * self.hop

    def steps(self, n_samples):
        """Whole steps whose targets lie inside ``n_samples`` samples."""
        return max(0, (n_samples - self.window) // self.hop)

    def prime_steps(self, n_samples):
        """The steps a prime of ``n_samples`` runs teacher-forced: the latest whole
        upper-tier steps of :meth:`steps` (all of them without an upper tier)."""
        steps = self.steps(n_samples)
        return steps - steps % self.ratio

    def prime_samples(self):
        """The default prime: one training chunk's worth of samples."""
        return self.block

    def frame(self, blocks):
        """``(B, n)`` samples -> ``inputs (B, steps, input_length)``, ``targets (B,
        steps, hop)`` (TensorFlow), ``steps = (n - window) // hop``."""
        import tensorflow as tf

        n = blocks.shape[-1]
        steps = self.steps(n)
        used = blocks[:, : self.window + steps * self.hop]
        inputs = tf.signal.frame(used[:, : used.shape[-1] - self.hop + self.lookahead], self.input_length,
                                 self.hop, axis=-1)
        targets = tf.signal.frame(used[:, self.window :], self.hop, self.hop, axis=-1)
        return inputs, targets

    def step_inputs(self, blocks):
        """NumPy: ``(B, n)`` samples -> the steps' inputs ``(B, steps, input_length)``
        float32, as :meth:`frame` gives them (without the targets)."""
        import numpy as np

        blocks = np.asarray(blocks, np.float32)
        steps = self.steps(blocks.shape[-1])
        starts = np.arange(steps) * self.hop
        return blocks[:, starts[:, None] + np.arange(self.input_length)]
