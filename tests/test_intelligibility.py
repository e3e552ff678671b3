"""The intelligibility report: PER arithmetic, the control timeline, the recogniser on
real speech, and the report's wiring (its "real" PER is the recogniser's own)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CORPORA, requires_corpora
from fixtures import tone_corpus, untrained_phone_model
from speechgen.cli import main
from speechgen.data.labels import Segment
from speechgen.measures.intelligibility import edit_distance, phone_error_rate, shuffled_segments, summarise


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_levenshtein_and_per_on_hand_checked_examples():
    assert edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a", "b"], []) == 2
    assert edit_distance("flaw", "lawn") == 2
    # TIMIT labels of "cat": closures and silences go, so the reference is k ae t.
    reference = ["h#", "kcl", "k", "ae", "tcl", "t", "h#"]
    # Recognised: K AA T S (one substitution, one insertion), with SIL and a stress digit.
    assert phone_error_rate(reference, ["SIL", "K", "AA1", "T", "S", "SIL"]) == pytest.approx(2 / 3)
    assert phone_error_rate(reference, ["k", "ae", "t"]) == 0
    assert phone_error_rate(["h#", "ix", "dx", "axr"], ["ih", "t", "er"]) == 0  # TIMIT allophones fold onto CMU
    with pytest.raises(ValueError):
        phone_error_rate(["h#", "pau"], ["aa"])


def test_corpus_per_is_total_edits_over_total_phones():
    rows = [
        {"phones": 10, "edits_real": 2, "edits_generated": 5, "edits_control": 9, "mcd_generated": 6.0, "mcd_control": 8.0},
        {"phones": 30, "edits_real": 6, "edits_generated": 9, "edits_control": 27, "mcd_generated": 4.0,
         "mcd_control": float("nan")},
    ]
    s = summarise(rows)
    assert s["per_real"] == pytest.approx(8 / 40) and s["per_generated"] == pytest.approx(14 / 40)
    assert s["per_control"] == pytest.approx(36 / 40) and s["per_ratio"] == pytest.approx(14 / 8)
    assert s["mcd_generated"] == pytest.approx(5.0) and s["mcd_control"] == pytest.approx(8.0)  # NaN left out


def test_the_control_timeline_keeps_segments_and_pauses_and_permutes_phones():
    phones = ["h#", "dh", "ih", "s", "pau", "ih", "z", "ah", "t", "eh", "s", "t", "h#"]
    segments, pos = [], 0
    for k, p in enumerate(phones):
        segments.append(Segment(pos, pos + 100 + 37 * k, p))
        pos += 100 + 37 * k
    control = shuffled_segments(segments, seed=1)
    assert [(s.start, s.end) for s in control] == [(s.start, s.end) for s in segments]
    assert sorted(s.phone for s in control) == sorted(phones)
    assert [s.phone for s in control if s.phone in ("h#", "pau")] == ["h#", "pau", "h#"]
    assert [c.phone for c in control].index("pau") == 4
    assert [s.phone for s in control] != phones
    assert shuffled_segments(segments, seed=1) == control and shuffled_segments(segments, seed=2) != control


def test_the_recogniser_decodes_each_utterance_as_if_it_were_the_first(tmp_path):
    """PocketSphinx's front end keeps state between utterances (the cepstral mean, the
    noise floor); the report decodes real, generated and control audio in turn, so a
    recording's phones must not depend on what came before it. On this tone corpus,
    test utterance 2 after utterance 0 and a burst of noise lost its first phone before
    the recogniser was reinitialised per utterance."""
    from speechgen.data.audio import read_audio
    from speechgen.measures.intelligibility import Recogniser

    folder = tone_corpus(tmp_path / "tones", rate=4000, n_utts=8, seconds=1.0)
    audio = [read_audio(f).read() for f in sorted(folder.rglob("*.wav")) + sorted(folder.rglob("*.WAV"))]
    noise = np.random.default_rng(0).normal(scale=0.5, size=4000)
    for i in range(1, 4):
        fresh = Recogniser().phones(audio[i], 4000)
        used = Recogniser()
        used.phones(audio[0], 4000), used.phones(noise, 4000)
        assert used.phones(audio[i], 4000) == fresh, i
    assert any(Recogniser().phones(x, 4000) for x in audio[1:4])  # something was recognised


def real_pers_directly(corpus, names):
    """Each named test utterance's PER, recognised here without the report."""
    from speechgen.measures.intelligibility import Recogniser

    recogniser = Recogniser()
    pieces = {p.name: p for p in corpus.splits["test"]}
    return [phone_error_rate([s.phone for s in pieces[n].segments], recogniser.phones(pieces[n].read(), corpus.rate))
            for n in names]


def test_the_report_through_the_cli_on_a_tone_corpus(tmp_path):
    """--json report on 4 kHz audio (resampled for the recogniser): one row per test
    utterance, every figure present, and "real" is the recogniser's own PER."""
    corpus_path = tone_corpus(tmp_path / "tones", rate=4000, n_utts=8, seconds=1.0)
    corpus = untrained_phone_model(tmp_path / "m.keras", corpus_path, 4000, window=40)
    result = run("evaluate", tmp_path / "m.keras", "--intelligibility", "--utterances", 2, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "test" and len(report["rows"]) == 2
    names = [r["name"] for r in report["rows"]]
    assert names == [p.name for p in corpus.splits["test"][:2]]
    for row, direct in zip(report["rows"], real_pers_directly(corpus, names)):
        assert row["per_real"] == pytest.approx(direct)
        for key in ("per_generated", "per_control", "mcd_generated", "mcd_control"):
            assert np.isfinite(row[key]), (key, row)
    assert report["summary"]["utterances"] == 2
    table = run("evaluate", tmp_path / "m.keras", "--intelligibility", "--utterances", 1)
    assert table.exit_code == 0 and "PER real" in table.stdout and table.stdout.count("\n") >= 4, table.output


def test_intelligibility_options_are_refused_where_they_do_not_apply(tmp_path):
    for args, words in [
        (["--utterances", "2"], "--utterances only applies with --intelligibility"),
        (["--intelligibility", "--free-running"], "two reports"),
        (["--intelligibility", "--primes", "2"], "--primes only applies with --free-running"),
    ]:
        result = run("evaluate", tmp_path / "m.keras", *args)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines() == [result.stderr.strip()] and words in result.stderr


@pytest.mark.corpus
@pytest.mark.slow
@requires_corpora("prompts-real")
def test_the_recogniser_understands_real_speech_and_the_report_says_so(tmp_path):
    """On real recordings PocketSphinx's PER is well below 1 (about 0.4), and the
    report's "real" PER for each test utterance is the one computed directly."""
    from speechgen.intelligibility import intelligibility_report
    from speechgen.model import load_model

    corpus = untrained_phone_model(tmp_path / "m.keras", CORPORA / "prompts-real", 16000, split=(0.8, 0.1, 0.1))
    report = intelligibility_report(load_model(tmp_path / "m.keras"), corpus, utterances=4)
    names = [r["name"] for r in report["rows"]]
    direct = real_pers_directly(corpus, names)
    assert [r["per_real"] for r in report["rows"]] == pytest.approx(direct)
    assert report["summary"]["per_real"] < 0.6, report["summary"]
    # A model with random weights says nothing: its PER is far worse than the real one.
    assert report["summary"]["per_generated"] > report["summary"]["per_real"] + 0.2
    assert report["summary"]["mcd_generated"] > 1.0
