"""The optimizer of a training run, from its config."""

import keras


def make_optimizer(config, steps_per_epoch=1):
    """The optimizer named in the config, with gradient clipping by global norm.

    With ``lr_schedule: cosine`` the learning rate follows a cosine from
    ``learning_rate`` down to ``lr_final x learning_rate`` over ``epochs x
    steps_per_epoch`` optimizer steps. The schedule is part of the optimizer and is
    driven by its step count, so a resumed run (whose checkpoint holds both) continues
    it exactly; its length is fixed when the run starts. A run with a time budget
    (``max_minutes``) plans its length as it goes: its learning rate is a plain,
    settable one, which :class:`speechgen.training.budget.TimeBudget` sets before
    every batch.
    """
    lr = config.learning_rate
    if config.lr_schedule == "cosine" and not config.max_minutes:
        lr = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, config.epochs * steps_per_epoch), alpha=config.lr_final
        )
    kwargs = {"learning_rate": lr}
    if config.clipnorm:
        kwargs["global_clipnorm"] = config.clipnorm
    cls = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[config.optimizer]
    optimizer = cls(**kwargs)
    if config.mixed_precision == "mixed_float16":
        # float16 gradients underflow without loss scaling (bfloat16 has float32's range).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
