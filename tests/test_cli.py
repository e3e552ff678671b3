"""The command line: instant help, the three verbs end to end, one-line errors."""

import json
import subprocess
import sys

import numpy as np
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
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    for split in ("train", "valid", "test"):
        r, at_training = report["splits"][split], summary["splits_mse"][split]
        # The saved best model, scored again on the recorded split: what training reported.
        for key in ("model", "zero", "persistence", "steps"):
            assert r[key] == pytest.approx(at_training[key], rel=1e-6), (split, key)
        assert r["model"] < r["zero"]  # two epochs on a chord beat predicting the mean
        assert r["zero"] >= r["variance"] > 0  # mean square >= variance
    # 30 s at 4 kHz split 80/10/10 in frames of 40 samples: each split's steps fit in it.
    assert report["splits"]["valid"]["steps"] <= (3 * 4000 - 40) // 40


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


def test_sample_refuses_options_that_would_not_apply(trained, tmp_path):
    tmp, _, _ = trained
    model = tmp / "run" / "model.keras"
    timeline = tmp_path / "t.PHN"
    timeline.write_text("0 4000 aa\n")
    one_line_error(run("sample", model, "--out", tmp_path / "g.wav", "--noise-seed", 3), 2,
                   "--noise-seed only applies to random draws (--temperature or --noise above 0)")
    one_line_error(run("sample", model, "--out", tmp_path / "g.wav", "--phones", timeline, "--seed", 2), 2,
                   "--seed only applies without --phones, or with --prime")
    one_line_error(run("evaluate", model, "--noise-seed", 1), 2, "--noise-seed only applies with --free-running")
    one_line_error(run("evaluate", model, "--free-running", "--noise-seed", 1), 2,
                   "--noise-seed only applies to random draws (--temperature or --noise above 0)")
    assert not (tmp_path / "g.wav").exists()


def test_the_wav_holds_the_prime_only_with_include_prime(trained, tmp_path):
    from speechgen.data.audio import read_audio

    tmp, _, _ = trained
    model = tmp / "run" / "model.keras"
    # Exactly as long as the prime asked for, so the prime is all of it (no offset to pick).
    prime = write_pcm16(tmp_path / "prime.wav", 4000, chord(4000, 0.5, freqs=(300.0,), amps=(0.4,)))
    args = ["--prime", prime, "--prime-seconds", 0.5, "--seconds", 0.5]
    plain = run("sample", model, "--out", tmp_path / "g.wav", *args)
    assert plain.exit_code == 0, plain.output
    both = run("sample", model, "--out", tmp_path / "gp.wav", "--include-prime", *args)
    assert both.exit_code == 0 and "starting with the prime" in both.output, both.output
    generated, with_prime = read_audio(tmp_path / "g.wav").read(), read_audio(tmp_path / "gp.wav").read()
    assert len(generated) == 2000 and len(with_prime) == 4000
    np.testing.assert_allclose(with_prime[:2000], read_audio(prime).read(), atol=1.5 / 32767)
    np.testing.assert_array_equal(with_prime[2000:], generated)  # deterministic: the same continuation


def test_moved_training_data_hints_at_options_the_command_has(trained, tmp_path):
    from speechgen.model import load_model

    tmp, _, _ = trained
    model = load_model(tmp / "run" / "model.keras")
    model.train_config = {**model.train_config, "data": str(tmp_path / "gone" / "chord.wav")}
    moved = tmp_path / "moved.keras"
    model.save(moved)
    one_line_error(run("sample", moved, "--out", tmp_path / "g.wav"), 1,
                   "gone/chord.wav: the model's training data is not there any more; move it back, or sample "
                   "without it: give --prime WAV")
    one_line_error(run("evaluate", moved), 1,
                   "not there any more; move it back, or give other data: speechgen evaluate MODEL DATA")
    prime = write_pcm16(tmp_path / "prime.wav", 4000, chord(4000, 1))
    result = run("sample", moved, "--out", tmp_path / "g.wav", "--prime", prime, "--seconds", 0.2)
    assert result.exit_code == 0, result.output  # what the hint says works


def test_generation_progress_in_logs_is_plain_lines(trained, tmp_path, monkeypatch):
    import speechgen.cli

    tmp, _, _ = trained
    monkeypatch.setattr(speechgen.cli, "PLAIN_EVERY_S", 0.0)
    # 6 s of 40-sample steps: about 600 steps, run in chunks of 256; a line after each
    # chunk but the last (the closing "wrote ..." line reports the end).
    result = run("sample", tmp / "run" / "model.keras", "--out", tmp_path / "g.wav", "--seconds", 6)
    assert result.exit_code == 0, result.output
    lines = [l for l in result.stderr.splitlines() if "real time" in l]
    done = [tuple(int(n) for n in l.split()[0].split("/")) for l in lines]
    assert [d for d, _ in done] == [256, 512] and all(590 <= total <= 600 for _, total in done), result.stderr
    assert all(float(l.split(", ")[1].split("x")[0]) > 0 for l in lines)
    assert "\r" not in result.output
    r = run("evaluate", tmp / "run" / "model.keras", "--free-running", "--seconds", 6, "--primes", 2)
    assert r.exit_code == 0, r.output
    lines = [l for l in r.stderr.splitlines() if "real time" in l]
    assert lines and all(l.endswith("x real time (2 streams)") for l in lines), r.stderr


def test_training_progress_is_a_live_bar_only_on_a_terminal(monkeypatch):
    import io

    from speechgen.cli import _verbosity

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert _verbosity(quiet=False) == 1 and _verbosity(quiet=True) == 2
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a file, a pipe
    assert _verbosity(quiet=False) == 2


def test_training_logged_to_a_file_is_one_plain_line_per_epoch(tmp_path):
    """``speechgen train ... > train.log 2>&1``: no colour codes, no carriage returns or
    backspaces of a progress bar, one line per epoch holding history.csv's figures."""
    import csv
    import os

    data = write_pcm16(tmp_path / "c.wav", 4000, chord(4000, 30))
    log = tmp_path / "train.log"
    with open(log, "wb") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "speechgen.cli", "train", str(data), "--out", str(tmp_path / "run"),
             *sets(epochs=3, patience=0)],
            stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600,
        )
    text = log.read_bytes().decode()
    assert proc.returncode == 0, text
    assert "\x1b" not in text and "\r" not in text and "\b" not in text, repr(text[:2000])
    epochs = [l for l in text.splitlines() if l.lower().startswith("epoch")]
    assert [l.split(" - ")[0] for l in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"], text
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    for line, row in zip(epochs, rows):
        fields = {k: v for k, _, v in (part.partition(" ") for part in line.split(" - "))}
        assert fields["14"] == "batches"  # 24 s of training audio: 14 batches of 8 x 20 x 40 samples
        assert float(fields["loss"]) == pytest.approx(float(row["loss"]), rel=1e-5)
        assert float(fields["val_loss"]) == pytest.approx(float(row["val_loss"]), rel=1e-5)


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
