"""Training configuration: defaults, YAML files and ``--set`` overrides, validated.

Resolution order (later wins): the :class:`Config` defaults -> each ``--config FILE``
(YAML, read with ``safe_load``) -> each ``--set key=value`` (the value parsed as YAML,
so ``--set units=[64,64]`` and ``--set learning_rate=1e-3`` work). Unknown keys,
wrong types and impossible values are errors naming the source. The resolved config
is saved beside the model (``RUN/config.yaml``) and inside it.

The framing (see docs/design.md): each model step reads ``window`` samples and
predicts the next ``hop``. Frame-level models (write-up 1) have ``hop == window``
(``frame_size``); sample-level models (write-up 2) have ``window = k`` and ``hop = 1``.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import SpeechgenError, UsageError

# The presets ship inside the package: ``speechgen/configs`` is a link to the
# repository's ``configs/`` (their home), and setup.cfg's package_data puts the files
# themselves into wheels and sdists, so ``--config demo`` works after ``pip install .``.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class Config:
    """Every setting of a training run. Units: samples, steps, epochs."""

    # Framing.
    window: int = 16000  # samples the model reads per step
    hop: int = 16000  # samples it predicts per step (= window: frame-level)
    seq_len: int = 50  # steps per truncated-BPTT chunk
    batch_size: int = 16  # parallel streams (fixed: the LSTMs are stateful)
    # Data.
    split: list = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train/valid/test
    normalisation: str = "meanrange"  # (x - mean)/(max - min), "minmax" -> [-1, 1], or "peak": x / max|x|
    # Pre-emphasis a (0: off): the model learns e[n] = x[n] - a x[n-1] and generated audio
    # is de-emphasised (speechgen.data.corpus.Normaliser; LPCNet uses 0.85)
    pre_emphasis: float = 0.0
    # Corpus folders: separate (each utterance its own stream, state zeroed at its start)
    # | joined (a split's utterances back to back, state carried across: speechgen/data/joined.py)
    utterances: str = "separate"
    # Gaussian noise sigma added to the training audio, inputs and targets, in the file's
    # units (full scale 1; 0: off): a noise floor, so digital silence (runs of exact
    # zeros, as in synthetic speech) is not a certainty a sampled model locks into.
    # Validation and evaluation read the audio as it is (speechgen.data.pipeline).
    dither: float = 0.0
    # Cut each file's leading and trailing silence (10-ms blocks more than trim_silence dB
    # below its loudest; 0: off), keeping trim_margin seconds beside the sound; phone
    # labels move with it (speechgen/data/trim.py). Every split is trimmed alike.
    trim_silence: float = 0.0
    trim_margin: float = 0.1
    # Phone conditioning (corpus folders with .PHN labels).
    phones: str = "none"  # none | current (phone of the predicted samples) | context (prev, cur, next)
    # | context_position (prev, cur, next and how far into the current phone)
    phone_embedding: int = 0  # 0: one-hot phones; N: a learned N-dim embedding
    phone_folding: str = "none"  # none | timit39 (Lee & Hon's 39 classes)
    # Model.
    units: list = field(default_factory=lambda: [600, 600, 600])  # one LSTM per entry
    dropout: float = 0.0  # between LSTM layers
    input_noise: float = 0.0  # Gaussian noise sigma on the input, normalised units
    input_noise_end: float = -1.0  # sigma reached after schedule_epochs (-1: constant)
    input_dropout: float = 0.0  # dropout on the input samples
    output_activation: str = "tanh"  # mse heads: tanh | linear
    # The head (docs/configuration.md): mse (regression) or categorical (a softmax over
    # quantised sample values, sampled when generating; trained in bits per sample).
    output: str = "mse"
    levels: int = 256  # categorical: number of quantised values
    quantisation: str = "mulaw"  # categorical: mulaw | linear
    # Tiered models: a sample-level predictor (ReLU layers of these sizes) below the LSTM
    # tier, which then steps once per hop samples. Empty: an untiered model.
    predictor_units: list = field(default_factory=list)
    predictor_window: int = 0  # samples each predicted sample reads (0: hop)
    input_embedding: int = 0  # categorical predictors: embed quantised inputs in N dims (0: real values)
    # An upper frame tier above the LSTM stack (SampleRNN's 3 tiers; tiered models only):
    # one LSTM per entry, stepping once per top_frame samples (a multiple of hop, <= window).
    top_units: list = field(default_factory=list)
    top_frame: int = 0  # samples per upper-tier step (0: no upper tier)
    l2: float = 0.0  # L2 penalty on LSTM and Dense kernels
    # Against input drift (docs/drift.md): scheduled sampling, Bengio et al. 2015.
    scheduled_sampling: float = 0.0  # final probability of feeding the model its own prediction
    sampling_schedule: str = "linear"  # linear | inverse_sigmoid
    schedule_epochs: int = 10  # epochs for the schedules to reach their final values
    # Optimisation.
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (to lr_final x learning_rate over epochs, or max_minutes)
    lr_final: float = 0.1  # cosine: the final learning rate, as a fraction of learning_rate
    clipnorm: float = 1.0  # gradient clipping by global norm; 0 disables
    epochs: int = 100
    patience: int = 10  # early stopping on val_loss
    # A time budget (0: none): the run plans as many epochs as fit (at most `epochs`),
    # ends within it, and a cosine learning rate anneals over it (speechgen.training.budget)
    max_minutes: float = 0.0
    max_batches: int = 0  # cap batches per epoch (0: the whole split)
    checkpoint_batches: int = 0  # also checkpoint every N training batches within an epoch (0: epoch ends only)
    keep_epochs: int = 0  # also keep epochs/epoch-NNN.keras (no optimizer) after every N-th epoch (0: none)
    # Listen during training (speechgen.training.listen): after every N-th epoch (0: never)
    # generate listen_primes streams of listen_seconds from validation primes and record
    # their quality score q and voiced / silent shares in history.csv.
    listen_every: int = 0
    listen_seconds: float = 5.0
    listen_primes: int = 4
    # Which epoch model.keras holds and early stopping counts from (speechgen.training.listen):
    # val_loss (the lowest validation loss) | listening (the lowest listen_distance: what the
    # run heard nearest the validation audio in q, voiced and silent shares; needs listen_every)
    best_by: str = "val_loss"
    mixed_precision: str = "none"  # none | mixed_float16 (GPU) | mixed_bfloat16 (CPUs with bf16)
    # compute the first LSTM layer's input projection for the whole chunk in one matmul
    # (the same maths, faster on CPU; the first layer then does not use cuDNN on GPU):
    # auto hoists unless TensorFlow sees a GPU | on | off
    hoist_input: str = "auto"
    jit_compile: str = "auto"  # auto (Keras' default) | on | off: XLA-compile the training step
    seed: int = 0

    def to_dict(self):
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
INT_LISTS = ("units", "predictor_units", "top_units")  # list keys of integers
CHOICES = {
    "normalisation": ("meanrange", "minmax", "peak"),
    "output_activation": ("tanh", "linear"),
    "optimizer": ("adam", "sgd", "rmsprop", "adamw"),
    "phones": ("none", "current", "context", "context_position"),
    "phone_folding": ("none", "timit39"),
    "mixed_precision": ("none", "mixed_float16", "mixed_bfloat16"),
    "sampling_schedule": ("linear", "inverse_sigmoid"),
    "jit_compile": ("auto", "on", "off"),
    "hoist_input": ("auto", "on", "off"),
    "lr_schedule": ("constant", "cosine"),
    "output": ("mse", "categorical"),
    "quantisation": ("mulaw", "linear"),
    "utterances": ("separate", "joined"),
    "best_by": ("val_loss", "listening"),
}


def _coerce(key, value, source):
    """Check ``value`` has the type of field ``key``; ints are accepted for floats."""
    default = FIELDS[key].default
    if default is dataclasses.MISSING:
        default = FIELDS[key].default_factory()
    want = type(default)
    if want is str and isinstance(value, bool) and {"on", "off"} <= set(CHOICES.get(key, ())):
        # YAML 1.1 reads on/off (and yes/no, true/false) as booleans: jit_compile=on,
        # hoist_input=true (once a bool key).
        value = "on" if value else "off"
    if want is float and isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; users mean a number.
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if want is list and ok:
        item = int if key in INT_LISTS else float
        ok = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and (item is float or isinstance(v, int))
            for v in value
        )
        value = [item(v) for v in value] if ok else value
    if not ok:
        raise UsageError(
            f"{source}: {key} must be {want.__name__}"
            f"{' of ' + ('integers' if key in INT_LISTS else 'numbers') if want is list else ''}"
            f", got {value!r}"
        )
    return value


def _apply(values, mapping, source):
    if not isinstance(mapping, dict):
        raise UsageError(f"{source}: expected a mapping of key: value, got {type(mapping).__name__}")
    for key, value in mapping.items():
        if key not in FIELDS:
            raise UsageError(
                f"{source}: unknown key {key!r} (known: {', '.join(sorted(FIELDS))})"
            )
        values[key] = _coerce(key, value, source)


def presets():
    """The names of the presets shipped with speechgen (``configs/NAME.yaml``), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name):
    """A config argument is a path, or the name of a preset in ``configs/``."""
    path = Path(name)
    if path.exists():
        return path
    preset = CONFIG_DIR / f"{name}.yaml"
    if preset.exists():
        return preset
    raise UsageError(f"{name}: no such config file or preset (presets: {', '.join(presets()) or 'none installed'})")


def load_config(files=(), sets=(), base=None):
    """Resolve a :class:`Config` from YAML files and ``key=value`` overrides.

    Args:
        files: config paths or preset names, applied in order.
        sets: ``"key=value"`` strings, applied after the files.
        base: a dict to start from instead of the defaults (e.g. a saved run's config).
    Raises:
        UsageError: unreadable file, bad YAML, unknown key, wrong type, bad value.
    """
    values = Config().to_dict() if base is None else dict(base)
    for name in files:
        path = resolve_config_path(name)
        try:
            mapping = yaml.safe_load(path.read_text())
        except OSError as err:
            raise UsageError(f"{path}: cannot be read ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise UsageError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        _apply(values, mapping or {}, str(path))
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UsageError(f"--set {item!r}: the value does not parse") from None
        _apply(values, {key.strip(): value}, f"--set {key.strip()}")
    config = Config(**values)
    validate(config)
    return config


def validate(config):
    """Raise :class:`UsageError` for values no run could use."""
    for key in ("window", "hop", "seq_len", "batch_size", "epochs"):
        if getattr(config, key) <= 0:
            raise UsageError(f"config: {key} must be positive, got {getattr(config, key)}")
    if config.hop > config.window:
        raise UsageError(
            f"config: hop ({config.hop}) must not exceed window ({config.window}): "
            "each step's input must contain the previous step's prediction"
        )
    if not config.units or any(u <= 0 for u in config.units):
        raise UsageError(f"config: units must be a non-empty list of positive sizes, got {config.units}")
    if len(config.split) != 3 or any(f < 0 for f in config.split) or abs(sum(config.split) - 1) > 1e-6:
        raise UsageError(
            f"config: split must be three non-negative fractions (train, valid, test) "
            f"summing to 1, got {config.split}"
        )
    if min(config.split[:2]) <= 0:
        raise UsageError(f"config: split needs non-empty train and valid parts, got {config.split}")
    for key in ("dropout", "input_dropout"):
        if not 0 <= getattr(config, key) < 1:
            raise UsageError(f"config: {key} must be in [0, 1), got {getattr(config, key)}")
    for key in ("input_noise", "l2", "clipnorm", "patience", "phone_embedding", "max_batches", "checkpoint_batches",
                "keep_epochs", "listen_every", "seed", "dither", "trim_silence", "trim_margin"):
        if getattr(config, key) < 0:
            raise UsageError(f"config: {key} must not be negative, got {getattr(config, key)}")
    if not 0 <= config.scheduled_sampling <= 1:
        raise UsageError(f"config: scheduled_sampling must be in [0, 1], got {config.scheduled_sampling}")
    if config.schedule_epochs < 1:
        raise UsageError(f"config: schedule_epochs must be positive, got {config.schedule_epochs}")
    if config.input_noise_end < 0 and config.input_noise_end != -1:
        raise UsageError(f"config: input_noise_end must be -1 (constant) or >= 0, got {config.input_noise_end}")
    if config.seed >= 2**32:
        raise UsageError(f"config: seed must be below 2**32, got {config.seed}")
    if config.learning_rate <= 0:
        raise UsageError(f"config: learning_rate must be positive, got {config.learning_rate}")
    if config.listen_seconds <= 0:
        raise UsageError(f"config: listen_seconds must be positive, got {config.listen_seconds:g}")
    if config.listen_primes < 1:
        raise UsageError(f"config: listen_primes must be at least 1, got {config.listen_primes}")
    if config.max_minutes < 0:
        raise UsageError(f"config: max_minutes must be 0 (no time budget) or positive, got {config.max_minutes}")
    if not 0 <= config.pre_emphasis < 1:
        raise UsageError(f"config: pre_emphasis must be in [0, 1) (0: off), got {config.pre_emphasis}")
    if not 0 <= config.lr_final <= 1:
        raise UsageError(f"config: lr_final must be in [0, 1] (a fraction of learning_rate), got {config.lr_final}")
    _validate_head(config)
    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            raise UsageError(
                f"config: {key} must be one of {', '.join(choices)}, got {getattr(config, key)!r}"
            )
    _validate_best_by(config)


def _validate_best_by(config):
    """``best_by: listening`` chooses the kept epoch by what the run heard, so it must
    listen, and hear at least one epoch the run will reach."""
    if config.best_by != "listening":
        return
    if not config.listen_every:
        raise UsageError("config: best_by=listening needs listening during training (set listen_every, e.g. 1)")
    if config.listen_every > config.epochs:
        raise UsageError(
            f"config: best_by=listening with listen_every={config.listen_every} hears no epoch of "
            f"epochs={config.epochs}; set listen_every to at most {config.epochs} (1: every epoch)"
        )


# Keys resume applies; the rest is baked into the checkpoint's model and optimizer (or
# the data split), so changing them would be silently ignored.
RESUMABLE = ("epochs", "patience", "max_batches", "checkpoint_batches", "max_minutes", "keep_epochs", "listen_every",
             "listen_seconds", "listen_primes")


def changed_keys(saved, config, resumable=RESUMABLE):
    """Keys of ``config`` whose value differs from the ``saved`` config and that a
    resumed run cannot apply (not in ``resumable``), in the config's key order.

    Args:
        saved: a saved model's ``train_config`` (dict; keys it lacks count as unchanged,
            but a missing ``best_by`` is ``val_loss``).
        config: the resolved :class:`Config` of the resume.
    """
    # A run saved before best_by existed kept its model by val_loss: switching it to
    # listening on resume would replace that model.keras with the first heard epoch.
    saved = {"best_by": "val_loss", **(saved or {})}
    return [k for k, v in config.to_dict().items() if k not in resumable and k in saved and not _same(k, saved[k], v)]


def _same(key, saved, value):
    """Whether a saved config value means ``value``: read as a config file's value is
    (an older run's ``hoist_input: false`` is today's ``off``)."""
    try:
        return _coerce(key, saved, "saved config") == value
    except UsageError:
        return saved == value


# A run kept by listening (best_by: listening) compares every epoch's listen_distance, so
# each must be heard alike: these resumable keys are fixed in such a run.
HEARD_ALIKE = ("listen_seconds", "listen_primes")


def check_resumable(saved, config, resumable=RESUMABLE):
    """Raise :class:`SpeechgenError` naming the first key resume cannot change."""
    changed = changed_keys(saved, config, resumable)
    if changed:
        raise SpeechgenError(
            f"--set {changed[0]}: cannot change {changed[0]} when resuming (only {', '.join(resumable)} "
            "can); start a new run"
        )
    if config.best_by == "listening":
        heard = changed_keys(saved, config, tuple(k for k in resumable if k not in HEARD_ALIKE))
        if heard:
            key = heard[0]
            raise SpeechgenError(
                f"--set {key}: cannot change {key} when resuming a run with best_by=listening (it compares "
                f"every epoch's listen_distance, heard with {key}={saved[key]:g}); start a new run"
            )


# The run's own record, SpeechRNN.run_state, saved beside (not inside) its
# train_config, which holds hyper-parameters only. model.keras: val_rmse (the square
# root of the best epoch's val_mse, normalised units; --noise scales by it).
# checkpoint.keras: epochs_done (finished epochs), batches_done (batches of the next
# epoch done, 0 at an epoch end), mid-epoch, epoch_seconds (that epoch's training
# time so far) and, in a run with a time budget, lr_progress (how far along its cosine
# the learning rate is, 0..1: speechgen.training.budget).
RUN_KEYS = ("val_rmse", "epochs_done", "batches_done", "epoch_seconds", "lr_progress")


def split_run_state(train_config):
    """``(hyper-parameters, run record)`` of a saved ``train_config`` (dicts).

    Models saved before the run record had a place of its own kept it inside
    ``train_config``: at its top level (first speechgen versions) or under ``"run"``;
    loading moves it out.
    """
    train_config = dict(train_config or {})
    state = {k: train_config.pop(k) for k in RUN_KEYS if k in train_config}
    state.update(train_config.pop("run", None) or {})
    return train_config, state


def updated_run_state(state, **changes):
    """A copy of the run record ``state`` with ``changes`` (None drops a key)."""
    return {k: v for k, v in {**(state or {}), **changes}.items() if v is not None}


def _validate_head(config):
    """The head and tier settings (see :mod:`speechgen.model.heads`)."""
    if not 2 <= config.levels <= 65536:
        raise UsageError(f"config: levels must be in 2..65536, got {config.levels}")
    if any(u <= 0 for u in config.predictor_units):
        raise UsageError(f"config: predictor_units must be positive sizes, got {config.predictor_units}")
    for key in ("predictor_window", "input_embedding"):
        if getattr(config, key) < 0:
            raise UsageError(f"config: {key} must not be negative, got {getattr(config, key)}")
    if config.predictor_units:
        k = config.predictor_window or config.hop
        if k > config.window:
            raise UsageError(
                f"config: predictor_window ({k}) must not exceed window ({config.window}): each "
                "sample's predictor reads the samples before it"
            )
        if config.scheduled_sampling:
            raise UsageError(
                "config: scheduled_sampling is not available for tiered models (predictor_units); "
                "set scheduled_sampling=0"
            )
    elif config.predictor_window or config.input_embedding:
        key = "predictor_window" if config.predictor_window else "input_embedding"
        raise UsageError(f"config: {key} needs a tiered model (set predictor_units, e.g. [256, 256])")
    if config.input_embedding and config.output != "categorical":
        raise UsageError("config: input_embedding needs output=categorical (it embeds quantised samples)")
    _validate_upper_tier(config)


def _validate_upper_tier(config):
    """``top_units`` and ``top_frame``: an upper frame tier above the LSTM stack."""
    if any(u <= 0 for u in config.top_units):
        raise UsageError(f"config: top_units must be positive sizes, got {config.top_units}")
    if config.top_frame < 0:
        raise UsageError(f"config: top_frame must not be negative, got {config.top_frame}")
    if not config.top_units:
        if config.top_frame:
            raise UsageError("config: top_frame needs an upper tier (set top_units, e.g. [256])")
        return
    if not config.predictor_units:
        raise UsageError("config: top_units needs a tiered model (set predictor_units, e.g. [256, 256])")
    if not config.top_frame:
        raise UsageError(f"config: top_units needs top_frame (samples per upper-tier step, a multiple of hop "
                         f"{config.hop}, e.g. {4 * config.hop})")
    if config.top_frame % config.hop:
        raise UsageError(
            f"config: top_frame ({config.top_frame}) must be a multiple of hop ({config.hop}): each upper-tier "
            "step conditions whole lower-tier steps"
        )
    if config.top_frame > config.window:
        raise UsageError(
            f"config: top_frame ({config.top_frame}) must not exceed window ({config.window}): the upper tier "
            f"reads the newest top_frame samples of a step's window (set window={config.top_frame})"
        )
    ratio = config.top_frame // config.hop
    if config.seq_len % ratio:
        raise UsageError(
            f"config: seq_len ({config.seq_len}) must be a multiple of top_frame / hop ({ratio}): a training "
            "chunk holds whole upper-tier steps"
        )


def dump_config(config):
    """The YAML text of a config (what ``RUN/config.yaml`` holds)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
