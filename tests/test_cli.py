"""The command line: instant help, the three verbs end to end, one-line errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import chord, tiny_sets, write_pcm16
from speechgen.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def sets(**kw):
    return [x for s in tiny_sets(**kw) for x in ("--set", s)]


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom speechgen.cli import main\n"
        "for args in ([], ['train'], ['sample'], ['evaluate']):\n"
        "    r = CliRunner().invoke(main, args + ['--help'])\n"
        "    assert r.exit_code == 0 and 'Usage' in r.output, r.output\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def one_line_error(result, code, *words):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = write_pcm16(tmp / "chord.wav", 4000, chord(4000, 30))
    result = run("train", data, "--out", tmp / "run", "--quiet", *sets(epochs=2))
    assert result.exit_code == 0, result.output
    return tmp, data, result


def test_train_prints_times_and_the_evaluation_table(trained):
    tmp, _, result = trained
    assert "s per epoch" in result.output
    assert "| test |" in result.output and "persistence MSE" in result.output
    assert (tmp / "run" / "model.keras").exists()


def test_sample_writes_the_requested_length(trained):
    tmp, _, _ = trained
    out = tmp / "gen.wav"
    result = run("sample", tmp / "run" / "model.keras", "--out", out, "--seconds", 1.5, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert "real time" in result.output
    from speechgen.data.audio import read_audio

    assert len(read_audio(out)) == 6000
    again = run("sample", tmp / "run" / "model.keras", "--out", out)
    one_line_error(again, 1, str(out), "already exists", "--force")
    prime = write_pcm16(tmp / "prime.wav", 4000, chord(4000, 1, freqs=(300.0,), amps=(0.4,)))
    result = run("sample", tmp / "run" / "model.keras", "--out", out, "--force", "--prime", prime, "--seconds", 0.5)
    assert result.exit_code == 0 and str(prime) in result.output


def test_evaluate_json_defaults_to_the_training_data(trained):
    tmp, data, _ = trained
    result = run("evaluate", tmp / "run" / "model.keras", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["data"] == str(data.resolve())
    for split in ("train", "valid", "test"):
        r = report["splits"][split]
        assert r["model"] >= 0 and r["zero"] > 0 and r["persistence"] > 0 and r["steps"] > 0


def test_errors_are_one_line_with_exit_codes(trained, tmp_path):
    tmp, data, _ = trained
    model = tmp / "run" / "model.keras"
    one_line_error(run("train", tmp_path / "nope.wav", "--out", tmp_path / "r"), 1, "nope.wav", "no such file")
    assert not (tmp_path / "r").exists()
    one_line_error(run("train", data, "--out", tmp_path / "r", "--set", "bogus=1"), 2, "unknown key 'bogus'")
    one_line_error(run("train", data, "--out", tmp / "run", *sets(epochs=1)), 1, "already holds files")
    one_line_error(run("sample", tmp_path / "missing.keras", "--out", tmp_path / "g.wav"), 1, "no such model file")
    (tmp_path / "fake.keras").write_text("not a zip")
    one_line_error(run("evaluate", tmp_path / "fake.keras"), 1, "fake.keras", "not a Keras model")
    other = write_pcm16(tmp_path / "r16k.wav", 16000, chord(16000, 1))
    one_line_error(
        run("sample", model, "--out", tmp_path / "g.wav", "--prime", other), 1, "16000 Hz", "4000 Hz"
    )
    assert not (tmp_path / "g.wav").exists()
    result = run("--debug", "evaluate", tmp_path / "fake.keras")
    assert result.exit_code != 0 and result.exc_info is not None  # --debug keeps the exception


def test_nan_run_exits_1_with_a_hint(tmp_path):
    data = write_pcm16(tmp_path / "chord.wav", 4000, chord(4000, 30))
    # A learning rate this absurd diverges in the first epoch, so no model is kept.
    bad = sets(epochs=3, learning_rate=1e6, optimizer="sgd", clipnorm=0, output_activation="linear")
    result = run("train", data, "--out", tmp_path / "run", "--quiet", *bad)
    assert result.exit_code == 1
    assert "diverged" in result.output and "Lower learning_rate" in result.output
    assert "no model was saved" in result.output
    assert not (tmp_path / "run" / "model.keras").exists()


def test_evaluate_refuses_data_at_another_rate(trained, tmp_path):
    tmp, _, _ = trained
    other = write_pcm16(tmp_path / "r8k.wav", 8000, chord(8000, 30))
    result = run("evaluate", tmp / "run" / "model.keras", other)
    one_line_error(result, 1, "r8k.wav", "8000 Hz", "4000 Hz")


def test_negative_seed_is_a_usage_error(tmp_path):
    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 30))
    result = run("train", data, "--out", tmp_path / "run", "--set", "seed=-1")
    one_line_error(result, 2, "seed must not be negative")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--bogus"], "No such option"),
        (["sample"], "Missing argument"),
        (["nosuchverb"], "No such command"),
        (["sample", "m.keras", "--out", "x.wav", "--seconds", "-1"], "--seconds"),
    ],
)
def test_click_usage_errors_are_one_line_exit_2(args, words):
    result = run(*args)
    one_line_error(result, 2, words, "--help")


def test_help_and_version_exit_0():
    assert run("--help").exit_code == 0 and run("--version").exit_code == 0


def test_failed_start_leaves_no_run_folder(tmp_path, monkeypatch):
    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 30))
    import keras

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", no_space)
    result = run("train", data, "--out", tmp_path / "run", "--quiet", *sets(epochs=1))
    assert result.exit_code == 1 and "No space left" in result.output
    assert not (tmp_path / "run").exists()


def test_reconstruct_out_dir_below_a_file(trained, tmp_path):
    tmp, data, _ = trained
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = run("reconstruct", tmp / "run" / "model.keras", data, "--out-dir", blocker / "rec")
    one_line_error(result, 1, "cannot create the folder")


def test_tensorboard_logs_scalars_and_generated_audio(tmp_path):
    import tensorflow as tf

    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 30))
    result = run("train", data, "--out", tmp_path / "run", "--quiet", "--tensorboard", *sets(epochs=2))
    assert result.exit_code == 0, result.output
    tags = {}
    for event_file in (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(value)
    assert any("loss" in t for t in tags), sorted(tags)
    audio = tags["generated"][-1]
    decoded = tf.audio.decode_wav(tf.make_ndarray(audio.tensor)[0][0])  # clip 0: (encoded WAV, label)
    assert decoded.sample_rate.numpy() == 4000 and decoded.audio.shape[0] == 8000  # 2 s
