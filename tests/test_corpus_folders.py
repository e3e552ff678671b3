"""Corpus folders: TIMIT layout split by speaker, flat folders by utterance, clean errors."""

import pytest

from fixtures import noise_utterance as utterance, timit_tree  # white noise, labels h# then aa
from speechgen.data.corpus import load_corpus, reopen_corpus
from speechgen.errors import SpeechgenError


def test_timit_layout_keeps_test_and_carves_valid_by_speaker(tmp_path):
    corpus = load_corpus(timit_tree(tmp_path / "timit"), [0.8, 0.2, 0.0], seed=1)
    assert corpus.layout == "timit" and corpus.rate == 8000 and corpus.labelled
    names = corpus.split_names()
    assert all(n.startswith("TEST/") for n in names["test"]) and len(names["test"]) == 6
    speakers = {s: {n.split("/")[2] for n in names[s]} for s in ("train", "valid")}
    assert len(speakers["valid"]) == 1 and len(speakers["train"]) == 4
    assert not speakers["train"] & speakers["valid"]  # no speaker in both
    assert len(names["train"]) + len(names["valid"]) == 15
    # SPHERE audio and its labels are read.
    piece = corpus.splits["test"][0]
    assert piece.segments[-1].phone == "aa" and len(piece.read()) == 4000


def test_flat_folder_splits_by_utterance_seeded_and_recorded(tmp_path):
    for i in range(20):
        utterance(tmp_path / "flat" / f"utt{i:02d}.wav", seed=i)
    a = load_corpus(tmp_path / "flat", [0.8, 0.1, 0.1], seed=3)
    b = load_corpus(tmp_path / "flat", [0.8, 0.1, 0.1], seed=3)
    c = load_corpus(tmp_path / "flat", [0.8, 0.1, 0.1], seed=4)
    assert a.layout == "flat" and a.split_names() == b.split_names() != c.split_names()
    assert [len(a.splits[s]) for s in ("train", "valid", "test")] == [16, 2, 2]
    every = sorted(n for names in a.split_names().values() for n in names)
    assert every == [f"utt{i:02d}.wav" for i in range(20)]
    # A model reopens exactly the recorded split, even after new files arrive.
    recorded = {"layout": "flat", **a.split_names()}
    utterance(tmp_path / "flat" / "late.wav", seed=99)
    again = reopen_corpus({"data": str(tmp_path / "flat"), "split": [0.8, 0.1, 0.1], "seed": 3, "splits": recorded})
    assert again.split_names() == a.split_names()


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(SpeechgenError, match="no .wav"):
        load_corpus(tmp_path, [0.8, 0.1, 0.1])
    for i in range(4):
        utterance(tmp_path / "mixed" / f"u{i}.wav", seed=i)
    utterance(tmp_path / "mixed" / "odd.wav", rate=16000)
    with pytest.raises(SpeechgenError, match=r"odd.wav: sample rate 16000 Hz differs from .*\(8000 Hz\)"):
        load_corpus(tmp_path / "mixed", [0.6, 0.2, 0.2])
    (tmp_path / "mixed" / "odd.wav").unlink()
    (tmp_path / "mixed" / "odd.PHN").rename(tmp_path / "mixed" / "orphan.PHN")
    with pytest.raises(SpeechgenError, match="orphan.PHN: label file without its audio"):
        load_corpus(tmp_path / "mixed", [0.6, 0.2, 0.2])
    (tmp_path / "mixed" / "orphan.PHN").unlink()
    (tmp_path / "mixed" / "u1.PHN").write_text("0 100 h#\n50 4000 aa\n")
    with pytest.raises(SpeechgenError, match="u1.PHN line 2: .*overlaps"):
        load_corpus(tmp_path / "mixed", [0.6, 0.2, 0.2])


def test_phone_model_needs_every_utterance_labelled(tmp_path):
    from speechgen.config import load_config
    from speechgen.train import train

    for i in range(6):
        utterance(tmp_path / "c" / f"u{i}.wav", seconds=1.0, seed=i, labelled=i != 2)
    config = load_config([], ["window=16", "hop=1", "seq_len=20", "batch_size=2", "units=[8]", "phones=current"])
    with pytest.raises(SpeechgenError, match="u2.wav: no .PHN labels"):
        train(tmp_path / "c", tmp_path / "run", config, verbose=0, log=lambda *a: None)
    assert not (tmp_path / "run").exists()
