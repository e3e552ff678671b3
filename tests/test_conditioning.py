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
    sample_to_wav(model, out, 0, prime_path=corpus / "u00.wav", phones_path=timeline)
    y = read_audio(out).read()
    assert len(y) == 8000
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
