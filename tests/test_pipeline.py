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


def test_pre_emphasised_blocks_read_their_true_previous_sample(tmp_path):
    """With pre-emphasis a = 0.5 the ramp n / 32768 becomes (0.5 n + 0.5) / 32768 at every
    n > 0, so 2 e - 1 must give back n at every position of every block, the first
    ones included (a block that took the sample before it as silence would give 2n - 1)."""
    pieces = [ramp_piece(tmp_path, 3000)]
    schedule = plan([3000], Framing(6, 1, 5), batch_size=2)
    emphasised = Normaliser("meanrange", 0.0, 1.0, 0.5)
    for k, (x, y) in enumerate(tbptt_dataset(pieces, emphasised, schedule)):
        n = np.round(2 * x.numpy() * 32768 - 1).astype(np.int64)
        t = np.round(2 * y.numpy() * 32768 - 1).astype(np.int64)
        starts = np.asarray(schedule.start[k])
        fresh = starts == 0  # a stream's first block starts at the piece's first sample (e[0] = x[0])
        np.testing.assert_array_equal(n[~fresh, :, 1:], n[~fresh, :, :1] + np.arange(1, 6))
        np.testing.assert_array_equal(n[~fresh, 0, 0], starts[~fresh])
        np.testing.assert_array_equal(t[:, :, 0], starts[:, None] + 6 + np.arange(5))


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
    # Rows 1-7 start inside the file from a zeroed state: 7 cold chunks of 11 x 8.
    assert schedule.cold == pytest.approx(7 / 88)


def test_a_few_utterances_over_many_rows_keep_their_state():
    """24 utterances of 0.5-2.5 s (16 kHz) over 32 rows of 32-step chunks, like a small
    test split of prompts-real trimmed: no stream length of the LPT layouts balances
    the rows to 95 % coverage but streams of one chunk, where every chunk would start
    from a zeroed state (cold) and be scored without the audio before it. The plan
    lays the utterances end to end over the rows instead: the same coverage, state
    carried along each utterance, a cold start only where a row begins mid-utterance."""
    framing = Framing(16, 16, 32)
    lengths = [int(n) for n in np.random.default_rng(3).integers(16 * 512, 80 * 512, 24)]
    schedule = plan(lengths, framing, batch_size=32, what="test")
    chunks = [framing.steps(n) // 32 for n in lengths]
    assert schedule.n_batches == sum(chunks) // 32  # every whole chunk but the remainder
    assert schedule.coverage > 0.96
    assert schedule.cold <= 31 / schedule.piece.size
    # After the first batch a row restarts only where an utterance starts ...
    later = schedule.fresh[1:]
    assert (schedule.start[1:][later] == 0).all()
    # ... and otherwise continues its utterance by one chunk.
    same = ~later
    np.testing.assert_array_equal(schedule.piece[1:][same], schedule.piece[:-1][same])
    np.testing.assert_array_equal(schedule.start[1:][same], schedule.start[:-1][same] + framing.span)
    # Each scheduled chunk is read once.
    pairs = set(zip(schedule.piece.ravel().tolist(), schedule.start.ravel().tolist()))
    assert len(pairs) == schedule.piece.size


# --- utterances: joined (speechgen/data/joined.py) ---


def test_joined_audio_reads_across_utterance_boundaries(tmp_path):
    from speechgen.data.joined import JoinedAudio

    lengths, offsets = [300, 50, 700, 20, 400], [0, 1000, 2000, 3000, 4000]
    pieces = [ramp_piece(tmp_path, n, o, f"u{i}") for i, (n, o) in enumerate(zip(lengths, offsets))]
    whole = np.concatenate([o + np.arange(n) for n, o in zip(lengths, offsets)])
    audio = JoinedAudio(pieces)
    assert len(audio) == sum(lengths) == len(whole)
    rng = np.random.default_rng(0)
    spans = [(0, len(whole)), (290, 360), (340, 1100), (1049, 1071), (0, 1), (len(whole) - 5, len(whole))]
    spans += [tuple(sorted(rng.integers(0, len(whole) + 1, 2))) for _ in range(50)]
    for start, stop in spans:
        got = np.round(audio.read(start, stop) * 32768).astype(np.int64)
        np.testing.assert_array_equal(got, whole[start:stop], err_msg=f"[{start}, {stop})")


def test_joined_split_plays_utterances_back_to_back(tmp_path):
    """With joined utterances a row reads across utterance boundaries with no reset: its
    windows are the concatenated signal, continued from batch to batch."""
    from speechgen.data.joined import join

    lengths, offsets = [900, 1700, 650, 1200, 400], [0, 2000, 4000, 6000, 8000]
    pieces = [ramp_piece(tmp_path, n, o, f"u{i}") for i, (n, o) in enumerate(zip(lengths, offsets))]
    whole = np.concatenate([o + np.arange(n) for n, o in zip(lengths, offsets)])
    joined = join(pieces)
    assert len(joined) == 1 and len(joined[0]) == len(whole)
    framing = Framing(10, 1, 50)
    schedule = plan([len(joined[0])], framing, batch_size=3)
    assert schedule.fresh[0].all() and not schedule.fresh[1:].any()  # no resets after the first batch
    batches = batches_of(joined, schedule)
    crossings = 0
    for k, (x, y) in enumerate(batches):
        for row in range(3):
            first = schedule.start[k, row]
            np.testing.assert_array_equal(x[row, :, 0], whole[first: first + 50])
            np.testing.assert_array_equal(y[row, :, 0], whole[first + 10: first + 60])
            crossings += int(np.any(np.diff(x[row].ravel()) > 1))
    assert crossings > 0  # some windows do span a boundary (the separate layout never does)
    assert join(pieces[:1]) == pieces[:1]


def test_joined_phone_segments_follow_their_audio(tmp_path):
    from speechgen.data.joined import join
    from speechgen.data.labels import Segment

    pieces = [ramp_piece(tmp_path, n, 0, f"u{i}") for i, n in enumerate([100, 60])]
    pieces[0].segments = [Segment(0, 40, "aa"), Segment(40, 100, "h#")]
    pieces[1].segments = [Segment(0, 60, "iy")]
    (joined,) = join(pieces)
    assert joined.segments == [Segment(0, 40, "aa"), Segment(40, 100, "h#"), Segment(100, 160, "iy")]
    pieces[1].segments = None
    assert join(pieces)[0].segments is None  # a piece without labels: the stream has none


def test_many_short_pieces_fall_short_by_chunks_not_samples():
    """24 utterances of 1.9 s hold more samples than one piece of 32 chunks would need,
    but each holds one whole chunk of 1.25 s: 24 chunks for 32 rows. The error says
    so, rather than only a sample count the split already exceeds."""
    framing = Framing(window=200, hop=200, seq_len=100)
    with pytest.raises(SpeechgenError) as err:
        plan([30800] * 24, framing, batch_size=32, what="valid")
    message = str(err.value)
    assert "739200 samples in 24 piece(s)" in message and "needs about 640200" not in message
    assert "make 24 whole chunk(s) of 20000 samples, fewer than its 32 rows" in message
    assert plan([30800] * 32, framing, batch_size=32).n_batches == 1  # one more piece per row does


def test_dither_gives_digital_silence_a_seeded_noise_floor(tmp_path):
    """Exact zeros (synthetic speech's pauses) become Gaussian noise of the given sigma,
    inputs and targets alike (a step's newest input is the step before's target), the
    same for the same seed, so a resumed epoch reads what the first reading did; and the
    quantised targets of silence are no longer one certain class."""
    from speechgen.data.quantise import quantise

    wavfile.write(tmp_path / "silence.wav", 1000, np.zeros(3000, np.int16))
    pieces = [Piece(read_audio(tmp_path / "silence.wav"), 0, 3000, "silence")]
    schedule = plan([3000], Framing(6, 1, 5), batch_size=2)

    def read(dither):
        return [(x.numpy(), y.numpy()) for x, y in tbptt_dataset(pieces, IDENTITY, schedule, dither=dither)]

    plain, dithered = read(None), read((0.01, 3))
    assert all(not x.any() and not y.any() for x, y in plain)
    targets = np.concatenate([y.ravel() for _, y in dithered])
    assert 0.009 < targets.std() < 0.011 and abs(targets.mean()) < 0.001
    for x, y in dithered:
        np.testing.assert_array_equal(x[:, 1:, -1], y[:, :-1, 0])
    again, other = read((0.01, 3)), read((0.01, 4))
    for (x, y), (x2, y2), (x3, _) in zip(dithered, again, other):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        assert not np.allclose(x, x3)
    # Pre-emphasis reads the sample before each block through the same dithered read.
    emphasised = [(x.numpy(), y.numpy()) for x, y in
                  tbptt_dataset(pieces, Normaliser("meanrange", 0.0, 1.0, 0.9), schedule, dither=(0.01, 3))]
    for x, y in emphasised:
        np.testing.assert_array_equal(x[:, 1:, -1], y[:, :-1, 0])
    # e[n] = d[n] - 0.9 d[n-1] of white noise d: sigma sqrt(1 + 0.81) = 0.0135.
    assert 0.0125 < np.concatenate([y.ravel() for _, y in emphasised]).std() < 0.0145
    classes = quantise(targets, 256, "mulaw")
    assert len(np.unique(quantise(np.zeros(10), 256, "mulaw"))) == 1 and len(np.unique(classes)) > 10
