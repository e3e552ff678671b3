"""``speechgen say``: text -> CMU phones -> the model's phones -> a timeline -> speech.

The timeline checks use known dictionary words; the bad inputs go through the real CLI
(one line, exit status, no file); a tiered categorical model trained on the tone corpus
(aa = 220 Hz, iy = 440 Hz) must say ``--phones "aa iy aa"`` as those tones.
"""

import numpy as np
import pytest
from click.testing import CliRunner

from fixtures import TONES, tone_corpus
from speechgen.cli import main
from speechgen.data.labels import PhoneInventory
from speechgen.data.pronounce import (
    CMU_PHONES, model_phone_sequence, parse_phones, pronounce, timeline, to_cmu,
)
from test_errors import one_line_error

RATE = 4000
CMU_INVENTORY = PhoneInventory(sorted({*CMU_PHONES, "h#", "pau"}))
# A TIMIT-style inventory (closures, no ao/zh: folded away).
TIMIT_INVENTORY = PhoneInventory(sorted({*CMU_PHONES, "h#", "pau", "bcl", "dcl", "gcl", "pcl", "tcl", "kcl"} - {"ao", "zh"}))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_text_becomes_dictionary_phones_with_pauses_at_punctuation():
    items = pronounce("Hello, world.")
    # HH AH0 L OW1: the unstressed AH0 is TIMIT's reduced ax.
    assert items == [("hh", "hello"), ("ax", "hello"), ("l", "hello"), ("ow", "hello"), (None, ","),
                     ("w", "world"), ("er", "world"), ("l", "world"), ("d", "world")]
    assert model_phone_sequence(items, CMU_INVENTORY) == [
        "h#", "hh", "ah", "l", "ow", "pau", "w", "er", "l", "d", "h#",
    ]
    with_reduced = PhoneInventory(sorted({*CMU_PHONES, "h#", "ax", "ix"}))
    assert model_phone_sequence(pronounce("hello music"), with_reduced) == [
        "h#", "hh", "ax", "l", "ow", "m", "y", "uw", "z", "ix", "k", "h#",
    ]
    # TIMIT inventories: stops get their closure, ao and zh their Lee & Hon fold.
    assert model_phone_sequence(pronounce("talk measure"), TIMIT_INVENTORY) == [
        "h#", "tcl", "t", "aa", "kcl", "k", "m", "eh", "sh", "er", "h#",
    ]
    # Without pau in the inventory a pause is h#; repeated marks make one pause.
    plain = PhoneInventory(sorted({*CMU_PHONES, "h#"}))
    assert model_phone_sequence(pronounce("no,, no."), plain) == ["h#", "n", "ow", "h#", "n", "ow", "h#"]
    assert model_phone_sequence(parse_phones("aa iy , aa"), CMU_INVENTORY) == ["h#", "aa", "iy", "pau", "aa", "h#"]


def test_timeline_durations_are_the_medians_over_the_rate():
    durations = {"h#": 0.2, "pau": 0.1, "hh": 0.05, "ah": 0.08, "l": 0.06, "ow": 0.12, "w": 0.05, "er": 0.1}
    phones = model_phone_sequence(pronounce("Hello, world"), CMU_INVENTORY)
    segments = timeline(phones, durations, 16000)
    assert [s.phone for s in segments] == phones
    lengths = [s.end - s.start for s in segments]
    assert all(n > 0 for n in lengths)
    assert segments[0].start == 0 and all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert segments[-1].end == sum(lengths)
    assert lengths[:6] == [3200, 800, 1280, 960, 1920, 1600]  # h# hh ah l ow pau: seconds x 16000
    fallback = sorted(durations.values())[len(durations) // 2]  # d has no duration: the median
    assert lengths[phones.index("d")] == round(fallback * 16000)
    fast = timeline(phones, durations, 16000, rate=2.0)
    assert [s.end - s.start for s in fast][:6] == [n // 2 for n in lengths[:6]]


def test_labels_map_to_cmu_39_without_silences():
    assert to_cmu(["h#", "bcl", "b", "ax", "q", "dx", "ao", "pau", "AH0", "ix", "epi", "zh"]) == [
        "b", "ah", "t", "ao", "ah", "ih", "zh",
    ]


# ------------------------------------------------------------------ the verb, via the CLI


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """An untrained phone model (inventory and durations of the tone corpus) and one
    without phones, saved as speechgen models: the refusals need no training."""
    from speechgen.data.corpus import load_corpus
    from speechgen.data.phones import inventory_of, median_durations
    from speechgen.model.model import SpeechRNN

    tmp = tmp_path_factory.mktemp("say")
    corpus_path = tone_corpus(tmp / "corpus", rate=RATE, n_utts=4, seconds=1.0)
    corpus = load_corpus(corpus_path, [0.5, 0.5, 0.0])
    pieces = corpus.splits["train"] + corpus.splits["valid"]
    common = dict(window=8, hop=8, units=[4], sample_rate=RATE, normaliser={"kind": "minmax", "center": 0.0, "scale": 0.4},
                  train_config={"data": str(corpus_path), "split": [0.5, 0.5, 0.0], "seed": 0})
    phone = SpeechRNN(phones=inventory_of(pieces).to_list(), phone_durations=median_durations(pieces, None, RATE),
                      **common)
    phone.save(tmp / "phone.keras")
    SpeechRNN(**common).save(tmp / "plain.keras")
    return tmp


BAD = {
    "unknown word": (["phone.keras", "say xyzzyq"], 1, ["'xyzzyq'", "not in the CMU pronouncing dictionary"]),
    "phone not in the inventory": (["phone.keras", "--phones", "aa zz"], 1, ["--phones", "'zz'", "not in the model's phone inventory"]),
    "word with a phone the model lacks": (["phone.keras", "see"], 1, ["'see'", "phone 's'", "not in the model's phone inventory"]),
    "model without phones": (["plain.keras", "hello"], 1, ["plain.keras", "not phone-conditioned"]),
    "empty text": (["phone.keras", " , . "], 2, ["text", "nothing to say"]),
    "both text and phones": (["phone.keras", "hello", "--phones", "aa"], 2, ["TEXT or --phones", "not both"]),
    "neither": (["phone.keras"], 2, ["say needs TEXT"]),
    "rate zero": (["phone.keras", "--phones", "aa", "--rate", "0"], 2, ["--rate", "above 0"]),
    "rate negative": (["phone.keras", "--phones", "aa", "--rate", "-2"], 2, ["--rate", "above 0"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tiny_models, case):
    args, code, words = BAD[case]
    out = tiny_models / f"{case.replace(' ', '-')}.wav"
    one_line_error(run("say", tiny_models / args[0], *args[1:], "--out", out), code, *words)
    assert not out.exists()


def test_an_existing_out_needs_force(tiny_models):
    out = tiny_models / "keep.wav"
    out.write_bytes(b"precious")
    one_line_error(run("say", tiny_models / "phone.keras", "--phones", "aa", "--out", out), 1, "keep.wav", "already exists",
                   "--force")
    assert out.read_bytes() == b"precious"
    result = run("say", tiny_models / "phone.keras", "--phones", "aa iy", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"RIFF"


def test_a_model_without_durations_falls_back_to_its_corpus(tiny_models, tmp_path):
    from speechgen.model import load_model
    from speechgen.say import say_timeline

    model = load_model(tiny_models / "phone.keras")
    recorded = say_timeline(model, phones="aa iy")
    model.phone_durations = None  # as a model saved before phone_durations existed
    assert say_timeline(model, phones="aa iy") == recorded
    model.train_config = {**model.train_config, "data": str(tmp_path / "gone")}
    with pytest.raises(Exception, match="records no phone durations and its training data"):
        say_timeline(model, phones="aa iy")


def test_training_records_each_phones_median_duration(tmp_path):
    """train.py computes the medians from the labels of every split; checked against
    the .PHN files read by hand."""
    from speechgen.config import load_config
    from speechgen.model import load_model
    from speechgen.train import train

    corpus = tone_corpus(tmp_path / "c", rate=RATE, n_utts=6, seconds=1.0)
    config = load_config([], ["window=8", "hop=8", "seq_len=8", "batch_size=2", "units=[4]", "phones=current",
                              "epochs=1", "max_batches=2"])
    train(corpus, tmp_path / "run", config, verbose=0, log=lambda *a: None)
    lengths = {}
    for phn in sorted(corpus.glob("*.PHN")):
        for line in phn.read_text().split("\n"):
            if line:
                a, b, p = line.split()
                lengths.setdefault(p, []).append(int(b) - int(a))
    durations = load_model(tmp_path / "run" / "model.keras").phone_durations
    assert set(durations) == {"aa", "iy"}
    for p, n in lengths.items():
        assert durations[p] == pytest.approx(np.median(n) / RATE)


# ------------------------------------------------------------- a model that says tones


def peak_hz(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)]


@pytest.mark.slow
@pytest.mark.parametrize("phones", ["current", "context_position"])
def test_say_phones_gives_each_segment_its_tone(tmp_path, phones):
    """A tiered categorical model (frame tier + sample-level predictor, 64 mu-law
    levels) trained on the tone corpus says "aa iy aa" as 220, 440, 220 Hz, each
    segment lasting the median training duration of its phone; told the phone alone,
    or its neighbours and the position within it too (four id columns from the
    training pipeline to say's timeline)."""
    from speechgen.data.audio import read_audio
    from speechgen.model import load_model

    corpus = tone_corpus(tmp_path / "corpus", rate=RATE)
    sets = ["window=16", "hop=8", "seq_len=32", "batch_size=16", "units=[64]", f"phones={phones}", "output=categorical",
            "levels=64", "predictor_units=[64]", "learning_rate=0.01", "epochs=8", "patience=0"]
    result = run("train", corpus, "--out", tmp_path / "run", "--quiet", *[x for s in sets for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    model = tmp_path / "run" / "model.keras"
    out = tmp_path / "said.wav"
    result = run("say", model, "--phones", "aa iy aa", "--out", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert "h# aa iy aa h#" in result.output
    durations = load_model(model).phone_durations
    y = read_audio(out).read()
    fallback = sorted(durations.values())[len(durations) // 2]  # h# is never said in this corpus
    edges = np.cumsum([0] + [round(durations.get(p, fallback) * RATE) for p in ("h#", "aa", "iy", "aa", "h#")])
    assert abs(len(y) - edges[-1]) < 16  # the timeline's length, less the last partial frame
    for k, phone in enumerate(("aa", "iy", "aa"), start=1):
        segment = y[edges[k] + 400 : edges[k + 1]]  # skip 0.1 s of transition
        assert abs(peak_hz(segment) - TONES[phone]) <= 8, (phone, peak_hz(segment))
        assert np.sqrt(np.mean(segment**2)) > 0.1
