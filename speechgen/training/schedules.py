"""Schedules against input drift: scheduled sampling and input noise, per epoch.

Scheduled sampling (Bengio et al., 2015) feeds the model its own prediction instead of
the true input with a probability ``p`` that rises over training. ``linear`` rises
evenly to the final value at ``schedule_epochs``; ``inverse_sigmoid`` has the shape of
the paper's inverse-sigmoid decay of teacher forcing (an S-curve: slow at first,
fastest in the middle, settling at the end), as a logistic rescaled to start at 0 and
reach the final value exactly at ``schedule_epochs``. The input noise sigma moves linearly from ``input_noise``
to ``input_noise_end`` over the same epochs.
"""

import math

import keras


def sampling_probability(epoch, final, schedule, epochs):
    """``p`` for ``epoch`` (0-based): 0 at epoch 0, ``final`` from ``epochs`` on."""
    if final <= 0:
        return 0.0
    t = min(1.0, epoch / epochs)
    if schedule == "linear":
        return final * t
    # inverse_sigmoid: a logistic S-curve, rescaled to run exactly from 0 to 1.
    lo, hi = _logistic(-SLOPE / 2), _logistic(SLOPE / 2)
    return final * (_logistic(SLOPE * (t - 0.5)) - lo) / (hi - lo)


SLOPE = 10.0  # steepness of the S-curve over the schedule (10: ~5% done at 1/4 of it)


def _logistic(z):
    return 1.0 / (1.0 + math.exp(-z))


def noise_sigma(epoch, start, end, epochs):
    """Input-noise sigma for ``epoch``: ``start`` to ``end`` linearly (``end`` -1: constant)."""
    if end < 0:
        return start
    return start + (end - start) * min(1.0, epoch / epochs)


class DriftSchedules(keras.callbacks.Callback):
    """Set the model's sampling probability and input-noise sigma at each epoch start.

    The values are kept in ``values`` (read by RunRecorder for the ``sampling_p`` and
    ``input_noise`` columns of ``history.csv``), not added to Keras' logs, so the
    progress line stays clean.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.values = {}

    def on_epoch_begin(self, epoch, logs=None):
        c = self.config
        self.values = {
            "sampling_p": sampling_probability(epoch, c.scheduled_sampling, c.sampling_schedule, c.schedule_epochs),
            "input_noise": noise_sigma(epoch, c.input_noise, c.input_noise_end, c.schedule_epochs),
        }
        self.model.set_schedules(**self.values)
