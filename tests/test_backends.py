"""One code path, any backend: models saved under TensorFlow, loaded under Keras' JAX
backend in a subprocess (the backend is fixed when keras is first imported), must give
TensorFlow's forward pass and carried LSTM state, the same generated samples with the
same seed, and bit-identical counter-based draws. Skipped with a reason where JAX is not
installed in this interpreter (``pip install -e .[test]`` installs it)."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import write_pcm16
from speechgen.data.corpus import Normaliser
from speechgen.generate import Generator
from speechgen.model import SpeechRNN, draws

ROOT = Path(__file__).resolve().parents[1]
SKIP_CODE = 77  # the subprocess's exit status when it cannot import jax

_PRELUDE = f"""\
import sys
try:
    import jax  # noqa: F401
except Exception as err:  # ImportError, or a jaxlib that does not load
    print(f"{{type(err).__name__}}: {{err}}")
    sys.exit({SKIP_CODE})
import keras
import numpy as np
assert keras.backend.backend() == "jax", keras.backend.backend()
inputs = {{k: (v.item() if v.dtype.kind == "U" else v) for k, v in np.load(sys.argv[1]).items()}}
outputs = {{}}
"""
_EPILOGUE = """
np.savez(sys.argv[2], **{k: np.asarray(v) for k, v in outputs.items()})
"""


def run_under_jax(script_text, arrays, workdir=None, timeout=300):
    """Run ``script_text`` in a fresh interpreter under Keras' JAX backend (on the CPU).

    The script sees ``inputs``, a dict of ``arrays`` as NumPy arrays (0-d string arrays,
    such as file paths, as ``str``), and fills ``outputs`` (name -> array-like), which is
    returned. Skips the calling test, with the reason, when ``jax`` cannot be imported in
    this interpreter; fails it with the subprocess's output when the script fails.

    Args:
        arrays: name -> array (``np.savez`` keys).
        workdir: where the npz files go (default: a temporary directory).
    """
    return start_under_jax(script_text, arrays, workdir, timeout).result()


def _no_jax(why):
    return f"JAX is not importable in {sys.executable} ({why}); pip install jax (or -e .[test])"


class start_under_jax:  # noqa: N801 (used like a function: run_under_jax without the wait)
    """:func:`run_under_jax` started in the background: ``.result()`` waits for it, so
    the caller's TensorFlow work runs meanwhile."""

    def __init__(self, script_text, arrays, workdir=None, timeout=300):
        if importlib.util.find_spec("jax") is None:  # not installed: skip before any work
            pytest.skip(_no_jax("No module named 'jax'"))
        self._tmp = tempfile.TemporaryDirectory(dir=workdir)
        tmp = Path(self._tmp.name)
        script, given, self._got = tmp / "script.py", tmp / "inputs.npz", tmp / "outputs.npz"
        script.write_text(_PRELUDE + textwrap.dedent(script_text) + _EPILOGUE)
        np.savez(given, **{k: np.asarray(v) for k, v in arrays.items()})
        env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        # The CPU: compared against TensorFlow on the CPU (a GPU's TF32 matmuls would differ).
        env.setdefault("JAX_PLATFORMS", "cpu")
        self._log = open(tmp / "log.txt", "w+")
        self._timeout = timeout
        self._process = subprocess.Popen([sys.executable, str(script), str(given), str(self._got)], cwd=ROOT,
                                         env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True)

    def result(self):
        try:
            try:
                code = self._process.wait(self._timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                code = None
            self._log.seek(0)
            log = self._log.read()
            if code == SKIP_CODE:
                pytest.skip(_no_jax(log.strip()[-300:]))
            if code is None:
                pytest.fail(f"the JAX-backend script ran past {self._timeout} s:\n{log[-4000:]}")
            if code:
                pytest.fail(f"the JAX-backend script failed (exit {code}):\n{log[-6000:]}")
            with np.load(self._got) as result:
                return {k: result[k] for k in result.files}
        finally:
            self._log.close()
            self._tmp.cleanup()


# --- the models: built and run under TensorFlow, the same archives under JAX ---

STREAMS, SEED = 2, 7
PHONES = ["aa", "h#", "iy", "s"]


def sharpened(model, factor=8.0):
    """Output kernels scaled up: an untrained categorical model is near uniform, so its
    draws would hardly depend on the logits; scaled, another model draws other classes."""
    if model.head.kind == "categorical":
        layer = model.get_layer("next_samples")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * factor, bias])
    return model


def _build(name):
    """(model with batch size 3, forward inputs of two calls, prime, phones or None, gen samples, noise)."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(5)
    if name == "frame-mse":  # write-up 1: frame-level, MSE (tanh), 2 x LSTM
        model = SpeechRNN(window=12, hop=12, units=[16, 8], batch_size=3, output_activation="tanh",
                          normaliser=Normaliser("minmax", 0.0, 1.0).to_dict())
        context, steps, prime_len, n, noise = 0, (3, 3), 61, 60, 0.05
    elif name == "tiered-embedding-phones":  # tiered categorical, input embedding, embedded phones
        model = SpeechRNN(window=8, hop=4, units=[16], batch_size=3, output="categorical", levels=32,
                          predictor_units=[12, 10], input_embedding=4, phones=PHONES, phone_context=3,
                          phone_embedding=3)
        context, steps, prime_len, n, noise = 3, (3, 3), 45, 48, 0.0
    else:  # "three-tier": an upper tier (top_units, top_frame), hoisted input, one-hot phones
        model = SpeechRNN(window=8, hop=4, units=[12], batch_size=3, output="categorical", levels=16,
                          quantisation="linear", predictor_units=[10], top_units=[14, 6], top_frame=8,
                          hoist_input=True, phones=PHONES, phone_context=1)
        context, steps, prime_len, n, noise = 1, (4, 4), 45, 48, 0.0  # whole upper steps (ratio 2)
    model = sharpened(model)
    width = model.window + (model.hop - 1 if model.predictor_units else 0)
    calls = []
    for t in steps:
        x = rng.normal(scale=0.3, size=(3, t, width)).astype("float32")
        calls.append([x, rng.integers(0, len(PHONES), (3, t, context)).astype("int32")] if context else x)
    prime = rng.normal(scale=0.3, size=(STREAMS, prime_len)).astype("float32")
    phones = None
    if context:
        n_steps = (prime_len - model.window) // model.hop + -(-n // model.hop)
        phones = rng.integers(0, len(PHONES), (STREAMS, n_steps, context)).astype("int32")
    return model, calls, prime, phones, n, noise


MODELS = ["frame-mse", "tiered-embedding-phones", "three-tier"]
KEYS = [(0, 0, 0), (7, 3, 2), (2**32 - 1, 2**31 + 5, 15), (123456789, 40000, 7)]

JAX_SCRIPT = """
import jax
from speechgen.generate import Generator
from speechgen.model import draws, load_model

for name in inputs["names"].split(","):
    model = load_model(inputs[f"{name}/path"])
    for c in range(2):
        x = inputs[f"{name}/x{c}"]
        y = model([x, inputs[f"{name}/ids{c}"]] if f"{name}/ids{c}" in inputs else x)
        outputs[f"{name}/y{c}"] = keras.ops.convert_to_numpy(y)
        for i, v in enumerate(model._rnn_state_variables()):
            outputs[f"{name}/state{c}_{i}"] = keras.ops.convert_to_numpy(v)
    gen = Generator(model, streams=int(inputs["streams"]), seed=int(inputs["seed"]), temperature=1.0,
                    noise=float(inputs[f"{name}/noise"]))
    outputs[f"{name}/generated"] = gen.generate(inputs[f"{name}/prime"], int(inputs[f"{name}/n"]),
                                                phones=inputs.get(f"{name}/phones"))

traced = jax.jit(lambda k: (draws.bits((5, 7), k), draws.uniform((5, 7), k), draws.normal((5, 7), k)))
for i, (seed, step, sub) in enumerate(inputs["keys"].tolist()):
    key = draws.key(seed, step, sub)
    outputs[f"key{i}"] = keras.ops.convert_to_numpy(key)
    for kind, f in (("bits", draws.bits), ("uniform", draws.uniform), ("normal", draws.normal)):
        outputs[f"{kind}{i}"] = keras.ops.convert_to_numpy(f((5, 7), key))
    for kind, value in zip(("bits", "uniform", "normal"), traced(key)):
        outputs[f"jit_{kind}{i}"] = keras.ops.convert_to_numpy(value)
    # A key with a traced step (as in the compiled loop) equals one with a Python step.
    outputs[f"traced_key{i}"] = jax.jit(lambda s: draws.key(seed, s, sub))(np.uint32(step).view(np.int32))
# The command line a JAX-only machine runs: speechgen sample on the frame-level model.
from speechgen.cli import main as cli_main
from speechgen.data.audio import read_audio

try:
    cli_main(["sample", inputs["frame-mse/path"], "--prime", inputs["cli/prime"], "--seconds", "0.05",
              "--out", inputs["cli/out"]], standalone_mode=False)
except SystemExit as done:  # the command's own exit
    assert not done.code, done.code
outputs["cli/wav"] = read_audio(inputs["cli/out"]).read()
outputs["tensorflow_imported"] = "tensorflow" in sys.modules
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(TensorFlow's results, JAX's results) for the same saved models: the JAX
    subprocess runs while this process computes TensorFlow's."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"compares JAX against TensorFlow; this run's Keras backend is {keras.backend.backend()}")
    tmp = tmp_path_factory.mktemp("backends")
    arrays = {"names": ",".join(MODELS), "streams": STREAMS, "seed": SEED, "keys": np.array(KEYS, np.uint64)}
    cases = {}
    for name in MODELS:
        model, calls, prime, phones, n, noise = cases[name] = _build(name)
        path = tmp / f"{name}.keras"
        model.save(path)
        arrays.update({f"{name}/path": str(path), f"{name}/prime": prime, f"{name}/n": n,
                       f"{name}/noise": noise})
        if phones is not None:
            arrays[f"{name}/phones"] = phones
        for c, x in enumerate(calls):
            if isinstance(x, list):
                arrays[f"{name}/x{c}"], arrays[f"{name}/ids{c}"] = x
            else:
                arrays[f"{name}/x{c}"] = x
    # speechgen sample under JAX: the frame-level model from a WAV prime (minmax [-1, 1]).
    arrays.update({"cli/prime": str(tmp / "prime.wav"), "cli/out": str(tmp / "cli.wav")})
    write_pcm16(tmp / "prime.wav", 16000, np.random.default_rng(9).normal(scale=0.2, size=800))
    under_jax = start_under_jax(JAX_SCRIPT, arrays, workdir=tmp)
    tf_side = {}
    for name, (model, calls, prime, phones, n, noise) in cases.items():
        model.reset_rnn_states()
        for c, x in enumerate(calls):
            tf_side[f"{name}/y{c}"] = keras.ops.convert_to_numpy(model(x))
            for i, v in enumerate(model._rnn_state_variables()):
                tf_side[f"{name}/state{c}_{i}"] = keras.ops.convert_to_numpy(v)
        gen = Generator(model, streams=STREAMS, seed=SEED, temperature=1.0, noise=noise)
        tf_side[f"{name}/generated"], tf_side[f"{name}/n"] = gen.generate(prime, n, phones=phones), n
    for i, k in enumerate(KEYS):
        key = draws.key(*k)
        tf_side[f"key{i}"] = keras.ops.convert_to_numpy(key)
        for kind, f in (("bits", draws.bits), ("uniform", draws.uniform), ("normal", draws.normal)):
            tf_side[f"{kind}{i}"] = keras.ops.convert_to_numpy(f((5, 7), key))
    return tf_side, under_jax.result()


@pytest.mark.parametrize("name", MODELS)
def test_the_jax_backend_forward_pass_and_carried_state_equal_tensorflow(runs, name):
    tf_side, jax_side = runs
    states = sorted(k for k in tf_side if k.startswith(f"{name}/state"))
    assert states and states == sorted(k for k in jax_side if k.startswith(f"{name}/state"))
    for key in [f"{name}/y0", f"{name}/y1", *states]:
        assert jax_side[key].shape == tf_side[key].shape, key
        np.testing.assert_allclose(jax_side[key], tf_side[key], atol=1e-5, rtol=0, err_msg=key)
    assert all(np.abs(tf_side[k]).max() > 1e-3 for k in states)  # a state to carry, not zeros


@pytest.mark.parametrize("name", MODELS)
def test_the_jax_backend_generator_draws_the_samples_tensorflow_draws(runs, name):
    """Same weights, prime, phones and seed: the draws are counter-based (no backend RNG),
    so a categorical model draws the same classes (the same decoded values, exactly) and
    an MSE model with noise gives its continuous outputs within float tolerance."""
    tf_side, jax_side = runs
    expected, got = tf_side[f"{name}/generated"], jax_side[f"{name}/generated"]
    assert got.shape == expected.shape == (STREAMS, tf_side[f"{name}/n"])
    if name == "frame-mse":
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    else:
        np.testing.assert_array_equal(got, expected)
    # The streams differ from each other (each its own prime and draws).
    assert not np.allclose(got[0], got[1])


def test_loading_running_and_generating_under_jax_never_import_tensorflow(runs):
    """What a JAX-only machine (no TensorFlow) needs: TensorFlow stays behind lazy imports
    (the tf.data pipeline, tf.distribute, Framing.frame), and ``speechgen sample`` does
    not import it either (it wrote its 0.05 s, 800 samples at 16 kHz, under JAX)."""
    assert not runs[1]["tensorflow_imported"]
    wav = runs[1]["cli/wav"]
    assert wav.shape == (800,) and np.isfinite(wav).all() and wav.std() > 0


def test_the_draws_are_bit_identical_under_jax_eager_and_jitted(runs):
    tf_side, jax_side = runs
    for i in range(len(KEYS)):
        np.testing.assert_array_equal(jax_side[f"key{i}"], tf_side[f"key{i}"])
        np.testing.assert_array_equal(jax_side[f"traced_key{i}"], tf_side[f"key{i}"])
        for kind in ("bits", "uniform"):
            for prefix in ("", "jit_"):
                got = jax_side[f"{prefix}{kind}{i}"]
                assert got.dtype == tf_side[f"{kind}{i}"].dtype
                np.testing.assert_array_equal(got, tf_side[f"{kind}{i}"], err_msg=f"{prefix}{kind}{i}")
        # Box-Muller's log, sqrt and cos may round differently between backends.
        for prefix in ("", "jit_"):
            np.testing.assert_allclose(jax_side[f"{prefix}normal{i}"], tf_side[f"normal{i}"], atol=2e-6, rtol=0)
