"""Listening during training (``listen_every``): what the run generates after each N-th
epoch is scored, recorded, and is exactly what the epoch's weights generate; listening
does not change training; it survives a resume."""

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import chord, write_pcm16
from speechgen.cli import main
from speechgen.config import load_config
from speechgen.model import load_model
from speechgen.train import train
from test_categorical import categorical_sets
from test_train import quiet


@pytest.fixture
def chord_wav(tmp_path):
    # 40 s at 4 kHz: 4 s of validation audio, enough for primes of one training sequence.
    return write_pcm16(tmp_path / "chord.wav", 4000, chord(4000, 40))


def history(run):
    return list(csv.DictReader(open(run / "history.csv")))


def test_listening_records_what_each_checked_epoch_generates(tmp_path, chord_wav):
    from speechgen.data.corpus import Normaliser, reopen_corpus
    from speechgen.generate import Generator
    from speechgen.measures.drift import held_out_primes, judged_audio
    from speechgen.measures.quality import QualityJudge

    lines = []
    config = load_config([], categorical_sets(epochs=4, input_embedding=4, listen_every=2, listen_seconds=1.5,
                                              listen_primes=3, keep_epochs=2))
    run = tmp_path / "run"
    train(chord_wav, run, config, verbose=2, log=lines.append)
    rows = history(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    for row in rows:
        checked = int(row["epoch"]) % 2 == 0
        for key in ("listen_q", "listen_voiced", "listen_silent", "listen_time"):
            assert math.isfinite(float(row[key])) == checked, (key, row)
    heard = [r for r in rows if r["epoch"] in ("2", "4")]
    for row in heard:
        assert 0 <= float(row["listen_voiced"]) <= 1 and 0 <= float(row["listen_silent"]) <= 1
        assert 0 < float(row["listen_time"]) < float(row["seconds"])  # counted in the epoch's seconds
    # The log says what it listens to, and each checked epoch's line what it heard.
    assert any(line.startswith("listening every 2 epochs: 3 streams of 1.5 s from validation primes") for line in lines)
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert ["listen q" in line for line in epoch_lines] == [False, True, False, True]
    summary = json.loads((run / "summary.json").read_text())
    reference = summary["listen_validation"]
    assert set(reference) == {"voiced", "silent"} and reference["voiced"] > 0.5  # a chord is voiced
    # Each recorded value is what that epoch's weights generate from the validation
    # primes with the run's seed: recomputed here from the kept epoch's model.
    for epoch, row in zip((2, 4), heard):
        model = load_model(run / "epochs" / f"epoch-{epoch:03d}.keras")
        corpus = reopen_corpus(model.train_config)
        normaliser = Normaliser.from_dict(model.normaliser)
        primes = held_out_primes(model, corpus.splits["valid"], 1.5, 3, config.seed)
        out = Generator(model, streams=3, seed=config.seed).generate(primes.audio, primes.n_samples)
        streams = [normaliser.plain(y, before) for y, before in zip(out, primes.audio)]
        judge = QualityJudge(judged_audio(corpus.splits["valid"], normaliser),
                             judged_audio(corpus.splits["train"], normaliser), model.sample_rate, primes.lengths,
                             seed=config.seed)
        report = judge.score(streams)
        assert float(row["listen_q"]) == pytest.approx(report["q"], rel=1e-5, abs=1e-6)
        assert float(row["listen_voiced"]) == pytest.approx(report["voiced"]["model"], abs=1e-6)
        assert float(row["listen_silent"]) == pytest.approx(report["silent"]["model"], abs=1e-6)
        assert reference["voiced"] == pytest.approx(report["voiced"]["held_out"], abs=1e-9)
    # Epochs 2 and 4 generate different audio: the check follows the weights.
    assert [float(r["listen_q"]) for r in heard][0] != pytest.approx(float(heard[1]["listen_q"]), abs=1e-9)

    # Resume two more epochs, listening every epoch now: the earlier rows are kept.
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=6", "--set", "listen_every=1",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    again = history(run)
    assert len(again) == 6 and again[:4] == rows
    assert all(math.isfinite(float(r["listen_q"])) for r in again[4:])


def test_listening_does_not_change_training(tmp_path, chord_wav):
    weights = {}
    for listen in (0, 1):
        config = load_config([], categorical_sets(epochs=2, input_noise=0.05, listen_every=listen,
                                                  listen_seconds=1, listen_primes=2))
        run = tmp_path / f"run{listen}"
        train(chord_wav, run, config, verbose=0, log=quiet)
        weights[listen] = (load_model(run / "checkpoint.keras").get_weights(),
                           [(r["loss"], r["val_loss"]) for r in history(run)])
    for a, b in zip(weights[0][0], weights[1][0]):
        np.testing.assert_array_equal(a, b)
    assert weights[0][1] == weights[1][1]


def test_listening_needs_validation_audio_longer_than_a_prime(tmp_path):
    from speechgen.data.corpus import load_corpus
    from speechgen.errors import SpeechgenError

    # A corpus folder whose validation utterances are each shorter than one training
    # sequence of the model (40 samples here): one line naming the split, before any
    # training, and no run directory left.
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(10):
        write_pcm16(folder / f"u{i}.wav", 4000, chord(4000, 6))
    valid = load_corpus(folder, [0.8, 0.2, 0.0], 0).split_names()["valid"]
    for name in valid:  # the split is by file name and seed: rewrite those short
        write_pcm16(folder / name, 4000, chord(4000, 0.01))
    config = load_config([], categorical_sets(epochs=1, listen_every=1, split="[0.8,0.2,0.0]", seq_len=4,
                                              batch_size=2))
    with pytest.raises(SpeechgenError, match=r"validation split, listen_every\): no held-out audio longer"):
        train(folder, tmp_path / "run", config, verbose=0, log=quiet)
    assert not (tmp_path / "run").exists()
    # Checked before --out is touched: --force on a folder holding a run deletes nothing.
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.keras").write_bytes(b"a model the user has")
    with pytest.raises(SpeechgenError, match="listen_every"):
        train(folder, old, config, force=True, verbose=0, log=quiet)
    assert (old / "model.keras").read_bytes() == b"a model the user has"


def test_a_phone_conditioned_model_listens_along_its_utterances_phones(tmp_path):
    from test_conditioning import level_corpus

    # Utterances of 0.75 s at 4 kHz: each listening stream follows its own validation
    # utterance's phones and ends with it.
    root = level_corpus(tmp_path / "corpus", n_utts=10)
    lines = []
    config = load_config([], categorical_sets(epochs=1, phones="context", listen_every=1, listen_seconds=2,
                                              listen_primes=2, split="[0.7,0.3,0.0]"))
    train(root, tmp_path / "run", config, verbose=2, log=lines.append)
    row = history(tmp_path / "run")[0]
    assert all(math.isfinite(float(row[key])) for key in ("listen_q", "listen_voiced", "listen_silent"))
    # Cut at the utterances' ends: under 2 s of the 2 asked for.
    described = next(line for line in lines if line.startswith("listening every 1 epoch: 2 streams of "))
    assert float(described.split(" streams of ")[1].split(" s ")[0]) < 0.75


def test_listen_distance_adds_q_short_of_one_and_the_shares_distances():
    from speechgen.training.listen import listen_distance

    reference = {"voiced": 0.55, "silent": 0.06}
    # The whole-corpus epoch 13 of docs/generation.md: q 0.938, voiced 0.464, silent 0.009.
    assert listen_distance(0.938, 0.464, 0.009, reference) == pytest.approx(0.062 + 0.086 + 0.051)
    assert listen_distance(1.3, 0.55, 0.06, reference) == 0  # nearer than real stretches counts as real
    assert listen_distance(0.2, 0.95, 0.0, reference) == pytest.approx(0.8 + 0.4 + 0.06)
    assert math.isnan(listen_distance(None, 0.5, 0.0, reference))


def rows_of(values):
    """History rows from ``(val_loss, listen_distance)`` pairs (NaN: not heard)."""
    return [{"epoch": i + 1, "val_loss": v, "listen_distance": d} for i, (v, d) in enumerate(values)]


def test_best_by_listening_chooses_and_stops_on_the_distance_not_the_validation_loss(tmp_path):
    from speechgen.training.callbacks import RunRecorder

    # Validation loss falls throughout; the distance is lowest at epoch 2, and epoch 4
    # was not heard (listen_every 2, say).
    rows = rows_of([(3.0, 0.9), (2.9, 0.2), (2.8, 0.5), (2.7, math.nan), (2.6, 0.3)])
    by_loss = RunRecorder(tmp_path, monitor="val_loss", rows=rows, patience=3)
    by_ear = RunRecorder(tmp_path, monitor="listen_distance", rows=rows, patience=3)
    assert (by_loss.best_epoch, by_ear.best_epoch) == (5, 2)
    assert by_ear.best == 0.2
    # Patience counts from the best-heard epoch (three epochs since epoch 2).
    assert by_ear.should_stop() and not by_loss.should_stop()
    assert not RunRecorder(tmp_path, monitor="listen_distance", rows=rows, patience=4).should_stop()
    # Before any epoch is heard there is no best, and nothing stops.
    unheard = RunRecorder(tmp_path, monitor="listen_distance", rows=rows_of([(3.0, math.nan)] * 4), patience=1)
    assert unheard.best_epoch is None and not unheard.should_stop()


def test_best_by_listening_keeps_the_epoch_heard_nearest_the_validation_audio(tmp_path, chord_wav):
    from speechgen.training.listen import listen_distance

    lines = []
    config = load_config([], categorical_sets(epochs=4, input_embedding=4, listen_every=1, listen_seconds=1.5,
                                              listen_primes=2, keep_epochs=1, best_by="listening"))
    run = tmp_path / "run"
    train(chord_wav, run, config, verbose=2, log=lines.append)
    rows = history(run)
    summary = json.loads((run / "summary.json").read_text())
    reference = summary["listen_validation"]
    distances = [float(r["listen_distance"]) for r in rows]
    for row, distance in zip(rows, distances):  # recorded as listen_distance says
        expected = listen_distance(float(row["listen_q"]), float(row["listen_voiced"]), float(row["listen_silent"]),
                                   reference)
        assert distance == pytest.approx(expected, abs=1e-5)
    best = int(np.argmin(distances)) + 1
    assert summary["best_by"] == "listening" and summary["best_epoch"] == best
    assert summary["best_listen_distance"] == pytest.approx(distances[best - 1], abs=1e-5)
    assert summary["best_val_loss"] == pytest.approx(float(rows[best - 1]["val_loss"]), rel=1e-6)
    # model.keras holds exactly that epoch's weights.
    kept, epoch = load_model(run / "model.keras"), load_model(run / "epochs" / f"epoch-{best:03d}.keras")
    for a, b in zip(kept.get_weights(), epoch.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [line for line in lines if "best so far" in line][-1].startswith(f"epoch {best}/")
    assert f"model.keras is epoch {best}, best by listening (distance" in lines[-1]

    # Resumed, it goes on choosing by the distance over all rows, old and new.
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=6", "--quiet"])
    assert result.exit_code == 0, result.output
    again = history(run)
    assert len(again) == 6 and again[:4] == rows
    distances = [float(r["listen_distance"]) for r in again]
    best = int(np.argmin(distances)) + 1
    assert json.loads((run / "summary.json").read_text())["best_epoch"] == best
    kept, epoch = load_model(run / "model.keras"), load_model(run / "epochs" / f"epoch-{best:03d}.keras")
    for a, b in zip(kept.get_weights(), epoch.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sets, message", [
    (["best_by=listening"], "best_by=listening needs listening during training (set listen_every"),
    (["best_by=listening", "listen_every=5", "epochs=4"], "hears no epoch of epochs=4; set listen_every to at most 4"),
    (["best_by=ear"], "best_by must be one of val_loss, listening"),
])
def test_bad_best_by_settings_are_one_line_errors(tmp_path, chord_wav, sets, message):
    args = ["train", str(chord_wav), "--out", str(tmp_path / "run"), "--quiet"]
    result = CliRunner().invoke(main, args + [a for s in sets for a in ("--set", s)])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_best_by_cannot_change_when_resuming(tmp_path, chord_wav):
    run = tmp_path / "run"
    config = load_config([], categorical_sets(epochs=1, listen_every=1, listen_seconds=1, listen_primes=1))
    train(chord_wav, run, config, verbose=0, log=quiet)
    before = (run / "model.keras").read_bytes()
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "epochs=2", "--set",
                                       "best_by=listening", "--quiet"])
    assert result.exit_code != 0 and "cannot change best_by when resuming" in result.output, result.output
    assert (run / "model.keras").read_bytes() == before
    # A run kept by listening compares distances heard alike: no new stream length.
    listened = tmp_path / "listened"
    heard = load_config([], categorical_sets(epochs=1, listen_every=1, listen_seconds=1, listen_primes=1,
                                             best_by="listening"))
    train(chord_wav, listened, heard, verbose=0, log=quiet)
    before = (listened / "model.keras").read_bytes()
    for change in ("listen_seconds=2", "listen_primes=2"):
        result = CliRunner().invoke(main, ["train", "--resume", str(listened), "--set", "epochs=2", "--set", change,
                                           "--quiet"])
        key = change.split("=")[0]
        assert result.exit_code == 1, result.output
        assert f"cannot change {key} when resuming a run with best_by=listening" in result.output, result.output
        assert "Traceback" not in result.output
    assert (listened / "model.keras").read_bytes() == before and len(history(listened)) == 1
    # A run saved before best_by existed kept its model by val_loss: the same refusal.
    from speechgen.config import check_resumable
    from speechgen.errors import SpeechgenError

    saved = {k: v for k, v in config.to_dict().items() if k != "best_by"}
    check_resumable(saved, config)  # unchanged: fine
    with pytest.raises(SpeechgenError, match="cannot change best_by"):
        check_resumable(saved, load_config([], categorical_sets(epochs=1, listen_every=1, best_by="listening")))


def test_multi_worker_runs_cannot_stop_early_on_what_only_the_chief_hears(tmp_path, chord_wav):
    config = load_config([], categorical_sets(epochs=2, listen_every=1, best_by="listening", patience=2))
    from speechgen.errors import UsageError

    with pytest.raises(UsageError, match="only the chief of a multi-worker run listens"):
        train(chord_wav, tmp_path / "run", config, verbose=0, log=quiet, strategy="multi-worker")
    assert not (tmp_path / "run").exists()
