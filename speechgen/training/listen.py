"""Listening during training: generate a few seconds after each N-th epoch and score them.

Validation bits say how well a model predicts the next sample of real audio, not what
it says when it runs on its own. On timit-tts they fell smoothly through epochs in
which the generated audio went quiet (a tenth of speech's RMS, q near 0) and came back,
and runs with the same settings ended from voiced 0.08 to 0.37 (docs/generation.md). So
with ``listen_every: N`` the run generates after every N-th epoch and writes what it
heard to ``history.csv``, the epoch line and ``curves.png``:

- ``listen_primes`` streams of ``listen_seconds`` each, free-running from primes taken
  from the **validation** split (the test split stays unseen; the same primes and the
  same draws every epoch, so a change between epochs is the model's), sampled at
  temperature 1 (an MSE head: its mean, no noise), with the compiled generator that
  ``speechgen sample`` uses;
- scored by :class:`speechgen.measures.quality.QualityJudge` against the validation
  audio, with references from the training audio made once at the start: ``listen_q``
  (the quality score q), ``listen_voiced`` and ``listen_silent`` (shares of frames),
  ``listen_time`` (seconds the check took; they count in the epoch's seconds, so a
  time budget plans with them) and ``listen_distance`` (:func:`listen_distance`: how
  far all three are from the validation audio's; 0 = like it).

With ``best_by: listening`` the run keeps in ``model.keras`` the epoch of the lowest
``listen_distance`` instead of the lowest validation loss, and early stopping counts
its patience from that epoch. Why: on male voices the voiced share of what the run
heard per epoch followed the same epoch's score on unseen test primes (Pearson
0.98-0.99 over 20 epochs), swung by 0.3 between neighbouring epochs, and the epoch of
the lowest validation bits was not a voiced one (voiced 0.23-0.24 against 0.58, where
epochs heard near the validation audio's voicing scored 0.44-0.55; docs/generation.md).

It generates from a copy of the model with ``listen_primes`` rows whose weights are
set from the training model's at each check: the training model's LSTM state, RNG and
weights are not touched, so a seeded run trains exactly as it would without listening
(tests/test_listen.py). The values go into the epoch's Keras logs, where
:class:`speechgen.training.callbacks.RunRecorder` (after this callback) records them.
"""

import math
import time

import keras
import numpy as np


class Listen(keras.callbacks.Callback):
    """Generate and score audio after every ``config.listen_every``-th epoch.

    Everything that does not change with the weights is prepared here, before
    training: the primes, the generator (traced at the first check), the validation
    features and the references.

    Args:
        model: the model being trained (any batch size; under a distribution strategy
            its weights are read with ``get_weights``).
        corpus: the run's :class:`speechgen.data.corpus.Corpus` (its valid and train
            splits).
        config: the run's :class:`speechgen.config.Config` (``listen_every``,
            ``listen_seconds``, ``listen_primes``, ``seed``).
    Attributes:
        reference: ``{"voiced", "silent"}``: the validation audio's own shares, what
            the model's are to be read against.
        last: the last check's :func:`speechgen.measures.quality.quality_report` dict.
    Raises:
        SpeechgenError: no validation utterance longer than one training sequence.
    """

    def __init__(self, model, corpus, config):
        super().__init__()
        from ..data.corpus import Normaliser
        from ..generate import Generator
        from ..measures.drift import held_out_primes, judged_audio
        from ..measures.quality import QualityJudge

        self.every = config.listen_every
        primes = config.listen_primes
        self.copy = model.with_batch_size(primes)
        self.normaliser = Normaliser.from_dict(model.normaliser)
        self.primes = held_out_primes(self.copy, corpus.splits["valid"], config.listen_seconds, primes, config.seed,
                                      _source(corpus))
        # With lookup tables, as `speechgen sample` generates (refreshed at each check).
        self.generator = Generator(self.copy, streams=primes, seed=config.seed, temperature=1.0)
        # Judged as audio: pre-emphasised models' streams and references de-emphasised.
        held = judged_audio(corpus.splits["valid"], self.normaliser)
        train = judged_audio(corpus.splits["train"], self.normaliser)
        self.judge = QualityJudge(held, train, model.sample_rate, self.primes.lengths, seed=config.seed)
        self.reference = {"voiced": self.judge.voiced["held_out"], "silent": self.judge.silent["held_out"]}
        self.last = None

    @staticmethod
    def check(corpus, config):
        """Raise the error :class:`Listen` would, before anything is created: the
        validation split must hold an utterance longer than one training sequence."""
        from ..data.framing import Framing
        from ..measures.drift import primeable

        primeable(corpus.splits["valid"], Framing.of(config), _source(corpus))

    def describe(self):
        """One line for the run's log: what is generated, and the validation audio's
        own voiced and silent shares."""
        p = self.primes
        return (
            f"listening every {self.every} epoch{'s' if self.every > 1 else ''}: {len(p.lengths)} streams of "
            f"{p.n_samples / self.copy.sample_rate:g} s from validation primes; the validation audio is voiced "
            f"{self.reference['voiced']:.2f}, silent {self.reference['silent']:.2f}"
        )

    def listen(self):
        """Generate from the current weights and score it: the quality report dict."""
        self.copy.set_weights(self.model.get_weights())
        self.generator.refresh()
        p = self.primes
        out = np.atleast_2d(self.generator.generate(p.audio, p.n_samples, phones=p.ids))
        streams = [self.normaliser.plain(y[:n], before) for y, n, before in zip(out, p.lengths, p.audio)]
        return self.judge.score(streams)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        loss = logs.get("loss")
        if loss is None or not math.isfinite(float(loss)):
            return  # a diverged model has nothing to say; StopOnNaN ends the run
        started = time.perf_counter()
        self.last = self.listen()
        q = self.last["q"]
        voiced, silent = self.last["voiced"]["model"], self.last["silent"]["model"]
        logs.update({
            "listen_q": math.nan if q is None else q,
            "listen_voiced": voiced,
            "listen_silent": silent,
            "listen_time": time.perf_counter() - started,
            "listen_distance": listen_distance(q, voiced, silent, self.reference),
        })


def listen_distance(q, voiced, silent, reference):
    """How far generated audio is from the validation audio, in shares: ``max(0, 1 -
    q) + |voiced - reference voiced| + |silent - reference silent|`` (0: like it; NaN
    when q is undefined).

    One number, lower is better, so ``best_by: listening`` chooses and early-stops on it
    as on a loss. The terms weigh alike: ``1 - q`` is 0 as near as real audio in log-mel
    frames (q above 1 counts as 1) and 1 as far as LPC-shaped noise (more when worse);
    the two shares (0..1) say whether it is as voiced and as often silent as speech,
    which q alone missed (epochs heard at q 0.92-0.99 were voiced 0.21-0.37 against 0.55).

    Args:
        q: the quality score (None: undefined).
        voiced, silent: the generated audio's shares of voiced and silent frames.
        reference: the validation audio's ``{"voiced", "silent"}`` shares.
    """
    if q is None or not math.isfinite(q):
        return math.nan
    return max(0.0, 1.0 - q) + abs(voiced - reference["voiced"]) + abs(silent - reference["silent"])


def _source(corpus):
    return f"{corpus.source} (validation split, listen_every)"
