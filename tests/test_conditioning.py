"""Phone conditioning: step phone ids, and a trained model that obeys its phones."""

import numpy as np
import pytest
from click.testing import CliRunner

from fixtures import TONES, tone_corpus  # each phone a pure tone (aa 220 Hz, iy 440 Hz)
from speechgen.data.phones import PhoneTrack
from speechgen.data.labels import PhoneInventory, Segment

INVENTORY = PhoneInventory(["aa", "h#", "iy", "s"])
AA, SIL, IY, S = (INVENTORY.index(p) for p in ("aa", "h#", "iy", "s"))


def test_track_fills_gaps_and_gives_current_previous_next():
    segments = [Segment(10, 20, "aa"), Segment(25, 30, "iy"), Segment(30, 40, "s")]
    track = PhoneTrack(segments, 50, INVENTORY)
    ids = track.step_ids(first_target=0, n_steps=50, hop=1)[:, 0]
    expected = np.array([SIL] * 10 + [AA] * 10 + [SIL] * 5 + [IY] * 5 + [S] * 10 + [SIL] * 10)
    np.testing.assert_array_equal(ids, expected)
    ctx = track.step_ids(first_target=27, n_steps=1, hop=1, context=3)
    np.testing.assert_array_equal(ctx, [[SIL, IY, S]])  # the gap before iy is its own segment
    first = track.step_ids(first_target=0, n_steps=1, hop=1, context=3)
    np.testing.assert_array_equal(first, [[SIL, SIL, AA]])  # before the start: the fill phone


def test_position_column_counts_sixteenths_of_the_current_phone():
    from speechgen.data.phones import POSITIONS

    assert POSITIONS == 16
    track = PhoneTrack([Segment(0, 32, "aa"), Segment(32, 40, "iy")], 40, INVENTORY)
    ids = track.step_ids(first_target=0, n_steps=40, hop=1, context=4)
    np.testing.assert_array_equal(ids[:, :3], track.step_ids(0, 40, hop=1, context=3))  # same first three
    # aa is 32 samples: 2 per bucket; iy is 8 samples: its k-th sample is at 2k sixteenths.
    np.testing.assert_array_equal(ids[:32, 3], np.repeat(np.arange(16), 2))
    np.testing.assert_array_equal(ids[32:, 3], 2 * np.arange(8))
    # Frames of 8: the step's middle sample (3.5 into the frame) decides: 3.5/32, 11.5/32, ...
    frames = track.step_ids(first_target=0, n_steps=5, hop=8, context=4)
    np.testing.assert_array_equal(frames[:, 1], [AA, AA, AA, AA, IY])
    np.testing.assert_array_equal(frames[:, 3], [1, 5, 9, 13, 7])


def test_frame_phone_is_the_majority_of_its_samples():
    track = PhoneTrack([Segment(0, 7, "aa"), Segment(7, 20, "iy"), Segment(20, 22, "s")], 30, INVENTORY)
    # Frames of 10 samples: [0,10) is 7 aa + 3 iy -> aa; [10,20) all iy; [20,30) 2 s + 8 fill -> h#.
    np.testing.assert_array_equal(track.step_ids(0, 3, hop=10)[:, 0], [AA, IY, SIL])


RATE = 4000


@pytest.fixture(scope="module")
def tone_model(tmp_path_factory):
    from speechgen.config import load_config
    from speechgen.train import train

    tmp = tmp_path_factory.mktemp("tones")
    corpus = tone_corpus(tmp / "corpus", rate=RATE)
    config = load_config([], [
        "window=32", "hop=1", "seq_len=50", "batch_size=16", "units=[32]", "phones=current",
        "learning_rate=0.01", "epochs=12", "patience=4", "output_activation=linear",
    ])
    train(corpus, tmp / "run", config, verbose=0, log=lambda *a: None)
    return tmp, corpus, tmp / "run" / "model.keras"


def peak_hz(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)]


@pytest.mark.parametrize("order", [("aa", "iy", "aa", "iy"), ("iy", "aa", "iy", "aa")])
def test_a_phone_timeline_drives_the_tone_of_each_segment(tone_model, order):
    from speechgen.data.audio import read_audio
    from speechgen.sample import sample_to_wav

    tmp, corpus, model = tone_model
    timeline = tmp / f"{'-'.join(order)}.PHN"
    timeline.write_text("".join(f"{i * 2000} {(i + 1) * 2000} {p}\n" for i, p in enumerate(order)))
    out = tmp / f"{'-'.join(order)}.wav"
    # With the prime (the timeline's first window, 32 samples), file sample t is timeline sample t.
    sample_to_wav(model, out, prime_path=corpus / "u00.wav", phones_path=timeline, include_prime=True)
    y = read_audio(out).read()
    assert len(y) == 8000
    generated_only = tmp / f"{'-'.join(order)}-generated.wav"  # the default: no prime in the file
    sample_to_wav(model, generated_only, prime_path=corpus / "u00.wav", phones_path=timeline)
    np.testing.assert_array_equal(read_audio(generated_only).read(), y[32:])
    for i, phone in enumerate(order):
        segment = y[i * 2000 + 400 : (i + 1) * 2000]  # skip the 0.1 s transition
        assert abs(peak_hz(segment) - TONES[phone]) <= 5, (i, phone, peak_hz(segment))
        assert np.sqrt(np.mean(segment**2)) > 0.1  # a tone, not silence


def test_reconstruct_and_unknown_phones_via_the_cli(tone_model):
    from speechgen.cli import main

    tmp, corpus, model = tone_model
    out = tmp / "rec"
    result = CliRunner().invoke(main, ["reconstruct", str(model), str(corpus / "u03.wav"), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    tf_mse = float(result.output.split("teacher-forced MSE")[1].split()[0])
    zero_mse = float(result.output.split("zero predictor MSE")[1].split()[0])
    assert tf_mse < 0.01 * zero_mse
    assert sorted(p.name for p in out.iterdir()) == [
        "free_running.wav", "original.wav", "reconstruction.png", "teacher_forced.wav",
    ]
    again = CliRunner().invoke(main, ["reconstruct", str(model), str(corpus / "u03.wav"), "--out-dir", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output

    bad = tmp / "bad.PHN"
    bad.write_text("0 1000 aa\n1000 2000 zh\n")
    result = CliRunner().invoke(main, ["sample", str(model), "--phones", str(bad), "--out", str(tmp / "x.wav")])
    assert result.exit_code == 1
    assert "bad.PHN: phone 'zh' is not in the phone inventory" in result.output
    assert not (tmp / "x.wav").exists()


def test_options_that_do_not_apply_to_a_phone_model_are_refused(tone_model):
    from speechgen.cli import main

    tmp, corpus, model = tone_model
    out = tmp / "refused.wav"
    for extra, words in [
        (["--seconds", "2"], "--seconds does not apply to a phone-conditioned model"),
        (["--prime-seconds", "0.5"], "--prime-seconds does not apply to a phone-conditioned model"),
        (["--prime", str(corpus / "u00.wav")], "--prime needs --phones with a phone-conditioned model"),
    ]:
        result = CliRunner().invoke(main, ["sample", str(model), "--out", str(out), *extra])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {words}"), result.output
    assert not out.exists()


# ------------------------------------------------- phone ids against their samples

LEVELS = {"h#": 0.0, "aa": 0.5, "iy": -0.4, "s": 0.2}  # each phone's sound: a constant level


def level_corpus(root, n_utts=6, rate=RATE, seed=0):
    """Utterances whose every sample says its phone: a constant level per phone (gaps,
    unlabelled, are silence = h#), segments of odd lengths, exact .PHN labels."""
    from fixtures import write_utterance

    rng = np.random.default_rng(seed)
    for u in range(n_utts):
        x, segments, pos = [], [], 0
        while pos < 3000:
            if rng.random() < 0.3:  # a gap: h# by the fill rule
                n = int(rng.integers(5, 60))
                x.append(np.zeros(n))
                pos += n
            phone = ("aa", "iy", "s")[int(rng.integers(3))]
            n = int(rng.integers(7, 150))
            x.append(np.full(n, LEVELS[phone]))
            segments.append((pos, pos + n, phone))
            pos += n
        write_utterance(root / f"u{u}.wav", rate, np.concatenate(x), segments)
    return root


def phones_of_values(values, inventory):
    """The phone id each sample's value says (nearest level)."""
    names = list(LEVELS)
    levels = np.array([LEVELS[n] for n in names])
    nearest = np.argmin(np.abs(np.asarray(values)[..., None] - levels), axis=-1)
    return np.array([inventory.index(n) for n in names])[nearest]


def majority(ids):
    """The id covering most of ``ids`` (consecutive runs; ties: the earlier run)."""
    runs, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            runs.append((i - start, -start, ids[start]))
            start = i
    return max(runs)[2]


@pytest.mark.parametrize("hop", [1, 5])
@pytest.mark.parametrize("shift", [0, "window"])
@pytest.mark.parametrize("joined", [False, True])
def test_training_phone_ids_are_those_of_the_samples_they_condition(tmp_path, monkeypatch, hop, shift, joined):
    """Every step's phone id, as the pipeline feeds it, is the phone of its target
    sample (the majority of its ``hop`` targets), with utterances apart or joined into
    one stream (their labels shifted with them). The same check with step_ids off by
    one window must fail: it proves the test can."""
    from speechgen.data.corpus import Normaliser, load_corpus
    from speechgen.data.phones import inventory_of
    from speechgen.data.framing import Framing
    from speechgen.data.pipeline import split_batches

    window = 8
    if shift:
        original = PhoneTrack.step_ids
        monkeypatch.setattr(PhoneTrack, "step_ids",
                            lambda self, first, n, h, context=1: original(self, first - window, n, h, context))
    corpus = load_corpus(level_corpus(tmp_path / "c"), [0.5, 0.5, 0.0])
    normaliser = Normaliser.fit("meanrange", corpus.splits["train"])
    inventory = inventory_of(corpus.splits["train"] + corpus.splits["valid"])
    dataset, _ = split_batches(corpus, "train", normaliser, Framing(window, hop, 10), 2, (inventory, None, 1),
                               joined=joined)
    wrong = total = 0
    for (frames, ids), targets in dataset:
        said = phones_of_values(normaliser.invert(targets.numpy()), inventory)  # (B, T, hop)
        expected = np.array([[majority(list(step)) for step in row] for row in said])
        wrong += int(np.sum(ids.numpy()[..., 0] != expected))
        total += expected.size
    assert total > 500
    if shift:
        assert wrong > 0.05 * total  # the shifted ids are caught
    else:
        assert wrong == 0


def test_generation_phone_ids_are_those_of_the_samples_they_condition(tmp_path):
    """sample's phone plan: step k predicts timeline sample window + k*hop and gets
    that sample's phone, for a held-out utterance and for a --phones timeline."""
    from types import SimpleNamespace

    from fixtures import write_phn
    from speechgen.data.corpus import Normaliser, load_corpus
    from speechgen.data.phones import inventory_of
    from speechgen.sample import phone_plan

    root = level_corpus(tmp_path / "c")
    corpus = load_corpus(root, [0.5, 0.5, 0.0])
    inventory = inventory_of(corpus.splits["train"] + corpus.splits["valid"])
    normaliser = Normaliser.fit("meanrange", corpus.splits["train"])
    model = SimpleNamespace(
        window=8, hop=1, phones=inventory.to_list(), phone_context=1, sample_rate=RATE,
        normaliser=normaliser.to_dict(),
        train_config={"data": str(root), "split": [0.5, 0.5, 0.0], "seed": 0, "phone_folding": "none",
                      "splits": {"layout": corpus.layout, **corpus.split_names()}},
    )
    prime, ids, n_samples, source = phone_plan(model, None, None, seed=1)
    piece = next(p for p in corpus.splits["valid"] if p.name in source)
    np.testing.assert_allclose(normaliser.invert(prime), piece.read(0, 8), atol=1e-6)
    said = phones_of_values(piece.read(), inventory)
    assert n_samples == len(piece) and len(ids) == len(piece) - 8
    np.testing.assert_array_equal(ids[:, 0], said[8:])
    # A timeline on its own: its labels say the phone of each sample (h# in the gaps).
    segments = [(0, 30, "aa"), (30, 47, "iy"), (55, 90, "s")]
    timeline = write_phn(tmp_path / "t.PHN", segments)
    _, ids, n_samples, _ = phone_plan(model, timeline, None, seed=0)
    truth = np.full(90, inventory.index("h#"))
    for a, b, p in segments:
        truth[a:b] = inventory.index(p)
    assert n_samples == 90
    np.testing.assert_array_equal(ids[:, 0], truth[8:])


def test_the_inventory_holds_phones_only_held_out_speakers_say(tmp_path):
    """A TIMIT layout whose valid speaker says 'pau' and whose test speaker says 'zh',
    phones no training speaker says: training starts (it used to fail with "phone
    'pau' is not in the phone inventory") and the model knows both."""
    from fixtures import noise_utterance, write_phn
    from speechgen.config import load_config
    from speechgen.data.corpus import load_corpus
    from speechgen.model import load_model
    from speechgen.train import train

    root = tmp_path / "timit"
    for split, speakers in (("TRAIN", 4), ("TEST", 1)):
        for s in range(speakers):
            for u in range(3):
                noise_utterance(root / split / "DR1" / f"{split[:2]}SPK{s}" / f"SX{u}.wav", RATE, seconds=1.0,
                                seed=10 * s + u, phones=("h#", "aa", "iy"))
    fractions = [0.7, 0.3, 0.0]
    corpus = load_corpus(root, fractions)  # which speaker is valid is the seed's choice
    assert corpus.layout == "timit"
    for piece, phone in ((corpus.splits["valid"][0], "pau"), (corpus.splits["test"][0], "zh")):
        write_phn(piece.labels, [(0, 1000, "h#"), (1000, 2000, phone), (2000, 4000, "aa")])
    config = load_config([], [
        "window=40", "hop=40", "seq_len=10", "batch_size=4", "units=[8]", "phones=current", "epochs=1",
        f"split={fractions}",
    ])
    result = train(root, tmp_path / "run", config, verbose=0, log=lambda *a: None)
    assert result.summary["epochs"] == 1
    phones = load_model(tmp_path / "run" / "model.keras").phones
    assert phones == ["aa", "h#", "iy", "pau", "zh"]
