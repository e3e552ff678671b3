"""The TBPTT pipeline: stream order across batches, framing, and too-short splits."""

import numpy as np
import pytest

from scipy.io import wavfile

from speechgen.audio import read_audio
from speechgen.corpus import Normaliser, Piece
from speechgen.errors import SpeechgenError
from speechgen.pipeline import StreamLayout, tbptt_dataset

IDENTITY = Normaliser("meanrange", 0.0, 1.0)


def ramp_piece(tmp_path, n):
    # Sample j holds the integer j (in 1/32768 units), so every value names its position.
    wavfile.write(tmp_path / "ramp.wav", 1000, np.arange(n, dtype=np.int16))
    return Piece(read_audio(tmp_path / "ramp.wav"), 0, n)


def positions(batch):
    return np.round(batch.numpy() * 32768).astype(np.int64)


@pytest.mark.parametrize("window, hop", [(8, 8), (6, 1), (10, 4)])
def test_row_i_of_batch_k_plus_1_continues_row_i_of_batch_k(tmp_path, window, hop):
    piece = ramp_piece(tmp_path, 5000)
    layout = StreamLayout.plan(len(piece), window, hop, seq_len=5, batch_size=3)
    batches = [(positions(x), positions(y)) for x, y in tbptt_dataset(piece, IDENTITY, layout)]
    assert len(batches) == layout.n_batches >= 2
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


def test_resume_from_a_batch():
    layout = StreamLayout.plan(1000, 4, 4, seq_len=5, batch_size=2)
    assert layout.n_batches == (1000 - 4) // 4 // 2 // 5


def test_split_too_short_names_the_split_and_what_to_change():
    with pytest.raises(SpeechgenError, match="valid split has 100 samples.*lower batch_size"):
        StreamLayout.plan(100, 10, 10, seq_len=5, batch_size=4, what="valid")
