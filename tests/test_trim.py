"""trim_silence: an utterance's silent ends are cut to a margin, its labels move with it."""

import numpy as np
import pytest

from fixtures import write_pcm16, write_utterance
from speechgen.config import load_config
from speechgen.data.audio import read_audio
from speechgen.data.corpus import load_corpus, reopen_corpus
from speechgen.data.phones import PhoneTrack
from speechgen.data.labels import PhoneInventory
from speechgen.data.trim import sounding_span
from speechgen.errors import UsageError

RATE = 8000


def _speech_like(seconds_before, seconds_sound, seconds_after, rate=RATE, quiet_db=None):
    """Digital silence, a 200-Hz tone (with, optionally, its middle third quiet_db dB
    down: a soft consonant inside the utterance), digital silence."""
    t = np.arange(int(seconds_sound * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 200.0 * t)
    if quiet_db is not None:
        third = len(tone) // 3
        tone[third:2 * third] *= 10 ** (-quiet_db / 20)
    return np.concatenate([np.zeros(int(seconds_before * rate)), tone, np.zeros(int(seconds_after * rate))])


def test_sounding_span_keeps_the_sound_and_the_margin(tmp_path):
    audio = read_audio(write_pcm16(tmp_path / "a.wav", RATE, _speech_like(0.5, 1.0, 1.0, quiet_db=30)))
    first, last = sounding_span(audio, 40, 0.1)
    # The tone spans samples 4000..12000; blocks are 80 samples (10 ms), so exact here.
    assert (first, last) == (4000 - 800, 12000 + 800)
    # A quieter stretch inside (30 dB down) is kept with a 40-dB threshold: only the ends go.
    assert sounding_span(audio, 40, 0.0) == (4000, 12000)
    # The margin never reaches outside the file.
    assert sounding_span(audio, 40, 5.0) == (0, len(audio))
    # Nothing sounds in digital silence: the file is kept whole, not emptied.
    zeros = read_audio(write_pcm16(tmp_path / "z.wav", RATE, np.zeros(3000)))
    assert sounding_span(zeros, 40, 0.1) == (0, 3000)


def test_folder_trimmed_with_labels_shifted(tmp_path):
    root = tmp_path / "corpus"
    for i in range(4):
        x = _speech_like(0.3 + 0.1 * i, 1.0, 0.6)
        lead = int((0.3 + 0.1 * i) * RATE)
        write_utterance(root / f"u{i}.wav", RATE, x,
                        [(0, lead, "h#"), (lead, lead + 4000, "aa"), (lead + 4000, lead + 8000, "iy"),
                         (lead + 8000, len(x), "h#")])
    plain = load_corpus(root, [0.5, 0.25, 0.25], seed=0)
    cut = load_corpus(root, [0.5, 0.25, 0.25], seed=0, trim=(40, 0.05))
    assert cut.split_names() == plain.split_names()
    # The training log says what went: leads 0.3-0.6 s (1.8 s) + tails 4 x 0.6 s, less
    # 8 margins of 0.05 s = 3.8 s, of 8.2 s of audio.
    assert cut.notes == ["trim_silence 40 dB cut 3.8 s of silent ends, 46.3 % of the audio (margin 0.05 s kept)"]
    assert plain.notes == []
    inventory = PhoneInventory.from_segments(p.segments for split in plain.splits.values() for p in split)
    for split in cut.splits:
        for before, after in zip(plain.splits[split], cut.splits[split]):
            lead = int(round((0.3 + 0.1 * int(after.name[1])) * RATE))
            assert (after.start, after.stop) == (lead - 400, lead + 8000 + 400)
            # The audio read is the same samples, from the new start.
            np.testing.assert_array_equal(after.read(), before.read(after.start, after.stop))
            # Labels follow: 400 samples of h#, aa from 400, iy from 4400, h# for the last 400.
            assert [tuple(s) for s in after.segments] == [(0, 400, "h#"), (400, 4400, "aa"),
                                                          (4400, 8400, "iy"), (8400, 8800, "h#")]
            track = PhoneTrack(after.segments, len(after), inventory)
            assert track.starts.tolist() == [0, 400, 4400, 8400] and track.ends[-1] == len(after)
            assert track.ids.tolist() == [inventory.index(p) for p in ("h#", "aa", "iy", "h#")]
    # A model's saved settings reopen the trimmed corpus; models saved before the setting
    # existed (no trim keys) reopen it whole.
    settings = {"data": str(root), "split": [0.5, 0.25, 0.25], "seed": 0}
    again = reopen_corpus({**settings, "trim_silence": 40, "trim_margin": 0.05})
    assert [(p.start, p.stop) for p in again.splits["train"]] == [(p.start, p.stop) for p in cut.splits["train"]]
    whole = reopen_corpus(settings)
    assert all((p.start, p.stop) == (0, len(p.audio)) for p in whole.splits["train"])


def test_single_file_trimmed_before_it_is_split(tmp_path):
    path = write_pcm16(tmp_path / "one.wav", RATE, _speech_like(2.0, 10.0, 3.0))
    corpus = load_corpus(path, [0.8, 0.1, 0.1], trim=(40, 0.0))
    spans = [(p.start, p.stop) for s in ("train", "valid", "test") for p in corpus.splits[s]]
    assert spans[0][0] == 2 * RATE and spans[-1][1] == 12 * RATE
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # the splits tile the sound
    assert spans[0][1] - spans[0][0] == 8 * RATE


def test_trim_settings_are_checked():
    assert load_config([], ["trim_silence=40"]).trim_silence == 40
    for key in ("trim_silence", "trim_margin"):
        with pytest.raises(UsageError, match=f"{key} must not be negative"):
            load_config([], [f"{key}=-1"])


def test_a_trimmed_run_is_evaluated_on_the_audio_it_was_trained_on(tmp_path):
    """train saves the setting; evaluate reopens the corpus trimmed, so its valid figure
    equals fit's best val_loss; scored untrimmed (long silent ends) it differs."""
    from speechgen.data.framing import Framing
    from speechgen.data.pipeline import plan
    from speechgen.evaluate import evaluate_model
    from speechgen.model.saving import load_model
    from speechgen.train import train

    root = tmp_path / "corpus"
    for i in range(6):
        write_utterance(root / f"u{i}.wav", 4000, _speech_like(0.4, 0.5, 0.8, rate=4000))
    config = load_config([], [
        "window=16", "hop=1", "seq_len=25", "batch_size=4", "units=[16]", "l2=0", "epochs=1",
        "learning_rate=0.01", "split=[0.5,0.5,0]", "trim_silence=40", "trim_margin=0.02",
    ])
    result = train(root, tmp_path / "run", config, verbose=0, log=lambda *_: None)
    model = load_model(tmp_path / "run" / "model.keras")
    assert (model.train_config["trim_silence"], model.train_config["trim_margin"]) == (40, 0.02)
    data = reopen_corpus(model.train_config)
    assert all(len(p) == round(0.54 * 4000) for p in data.splits["valid"])
    valid = evaluate_model(model, data, ("valid",))["valid"]
    trimmed = valid["model"]
    assert trimmed == pytest.approx(result.summary["best_val_loss"], rel=1e-4)
    # evaluate says how the figure was scored: 3 pieces of 85 chunks over 4 rows, so
    # some rows start inside a piece from a zeroed state (cold), at most 3 of 63 x 4.
    planned = plan([len(p) for p in data.splits["valid"]], Framing(16, 1, 25), 4)
    assert valid["coverage"] == planned.coverage and valid["cold"] == planned.cold
    assert 0 < valid["cold"] <= 3 / planned.piece.size
    whole = reopen_corpus({**model.train_config, "trim_silence": 0})
    untrimmed = evaluate_model(model, whole, ("valid",))["valid"]["model"]
    assert abs(untrimmed / trimmed - 1) > 1e-2, (untrimmed, trimmed)
