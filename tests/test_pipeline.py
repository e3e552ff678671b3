"""The TBPTT pipeline: stream order across batches, framing, utterances kept apart."""

import numpy as np
import pytest
from scipy.io import wavfile

from speechgen.data.audio import read_audio
from speechgen.data.corpus import Normaliser, Piece
from speechgen.errors import SpeechgenError
from speechgen.data.framing import Framing
from speechgen.data.pipeline import plan, tbptt_dataset

IDENTITY = Normaliser("meanrange", 0.0, 1.0)


def ramp_piece(tmp_path, n, offset=0, name="ramp"):
    # Sample j holds the integer offset + j (in 1/32768 units): every value names its position.
    wavfile.write(tmp_path / f"{name}.wav", 1000, (offset + np.arange(n)).astype(np.int16))
    return Piece(read_audio(tmp_path / f"{name}.wav"), 0, n, name)


def positions(batch):
    return np.round(batch.numpy() * 32768).astype(np.int64)


def batches_of(pieces, schedule):
    return [(positions(x), positions(y)) for x, y in tbptt_dataset(pieces, IDENTITY, schedule)]


@pytest.mark.parametrize("window, hop", [(8, 8), (6, 1), (10, 4)])
def test_row_i_of_batch_k_plus_1_continues_row_i_of_batch_k(tmp_path, window, hop):
    pieces = [ramp_piece(tmp_path, 5000)]
    schedule = plan([5000], Framing(window, hop, 5), batch_size=3)
    batches = batches_of(pieces, schedule)
    assert len(batches) == schedule.n_batches >= 2
    assert schedule.fresh[0].all() and not schedule.fresh[1:].any()
    for k, (x, y) in enumerate(batches):
        assert x.shape == (3, 5, window) and y.shape == (3, 5, hop)
        # Inside a batch: step t reads [t*hop, t*hop + window) and targets the next hop samples.
        np.testing.assert_array_equal(x[:, :, 1:], x[:, :, :1] + np.arange(1, window))
        np.testing.assert_array_equal(y[:, :, 0], x[:, :, -1] + 1)
        np.testing.assert_array_equal(np.diff(x[:, :, 0], axis=1), hop)
        if k:
            # Across batches: the first step of row i follows the last step of row i.
            np.testing.assert_array_equal(x[:, 0, 0], batches[k - 1][0][:, -1, 0] + hop)
    # Streams' targets are disjoint and in order: row i's last target comes before
    # row i + 1's first (inputs may share up to window - hop samples of context).
    last_target = batches[-1][1][:, -1, -1]
    first_target = batches[0][1][:, 0, 0]
    assert np.all(last_target[:-1] < first_target[1:])
    assert 0.9 < schedule.coverage <= 1.0


def test_utterances_never_share_a_stream(tmp_path):
    # Five utterances whose sample values are disjoint ranges: a row that reads across
    # an utterance boundary, or continues one without the fresh flag, is caught.
    lengths = [900, 1700, 650, 1200, 400]
    offsets = [0, 2000, 4000, 6000, 8000]
    pieces = [ramp_piece(tmp_path, n, o, f"u{i}") for i, (n, o) in enumerate(zip(lengths, offsets))]
    schedule = plan(lengths, Framing(10, 1, 50), batch_size=3)
    batches = batches_of(pieces, schedule)
    for k, (x, y) in enumerate(batches):
        for row in range(3):
            utt = schedule.piece[k, row]
            lo, hi = offsets[utt], offsets[utt] + lengths[utt]
            assert lo <= x[row].min() and y[row].max() < hi  # stays inside one utterance
            if k and not schedule.fresh[k, row]:
                assert schedule.piece[k - 1, row] == utt
                assert x[row, 0, 0] == batches[k - 1][0][row, -1, 0] + 1
            if k and schedule.piece[k - 1, row] != utt:
                assert schedule.fresh[k, row]
    assert schedule.coverage > 0.8


def test_one_row_per_batch_covers_every_whole_chunk():
    schedule = plan([1000, 500], Framing(4, 4, 5), batch_size=1)
    assert schedule.n_batches == (1000 - 4) // 4 // 5 + (500 - 4) // 4 // 5


def test_split_too_short_names_the_split_and_what_to_change():
    with pytest.raises(SpeechgenError, match="valid split has 100 samples.*lower batch_size"):
        plan([100], Framing(10, 10, 5), batch_size=4, what="valid")


def test_streams_are_not_cut_when_cutting_does_not_help():
    # 60 s at 8 kHz, window = hop = 200, seq_len 20, 8 rows: the first plan covers 92%;
    # shorter streams cover no more, so the plan keeps one stream per row.
    schedule = plan([int(0.8 * 60 * 8000)], Framing(200, 200, 20), batch_size=8)
    assert schedule.fresh[0].all() and not schedule.fresh[1:].any()
