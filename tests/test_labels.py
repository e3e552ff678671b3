"""TIMIT .PHN reader, phone inventory, gap filling and 61 -> 39 folding."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechgen.errors import SpeechgenError
from speechgen.data.labels import (
    TIMIT_FOLD_39,
    PhoneInventory,
    Segment,
    fold_phone,
    fold_segments,
    read_phn,
)
from speechgen.data.audio import read_audio
from speechgen.data.phones import PhoneTrack

TIMIT_61 = (
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl "
    "h# hh hv ih ix iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w "
    "y z zh"
).split()
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
FAST = settings(max_examples=200, deadline=None)


def per_sample(segments, n_samples, inventory, source=None):
    """One phone id per sample, as the model's conditioning sees them (gaps -> h#)."""
    track = PhoneTrack(segments, n_samples, inventory, source)
    return track.ids[track.segment_at(np.arange(n_samples))]


def write(tmp_path, text, name="x.PHN"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_valid_file(tmp_path):
    path = write(tmp_path, "0 2400 h#\r\n2400 4544 sh\n\n  4544 4992\tiy  \n")
    assert read_phn(path, n_samples=4992) == [
        Segment(0, 2400, "h#"),
        Segment(2400, 4544, "sh"),
        Segment(4544, 4992, "iy"),
    ]


BAD = {
    "overlap": ("0 100 a\n90 200 b\n", 2, "overlaps the previous one"),
    "disorder": ("100 200 a\n0 50 b\n", 2, "starts before the previous one"),
    "past the end": ("0 100 a\n100 1200 b\n", 2, "ends at sample 1200 but the audio has 1000"),
    "non-numeric": ("0 100 a\n100 2x0 b\n", 2, "end '2x0' is not an integer"),
    "float": ("0 100.5 a\n", 1, "is not an integer"),
    "negative": ("-5 100 a\n", 1, "start -5 is negative"),
    "too few fields": ("0 100 a\n\n100 200\n", 3, "expected 'start end phone', got 2"),
    "too many fields": ("0 100 a b\n", 1, "got 4 fields"),
    "end before start": ("0 100 a\n1200 900 b\n", 2, "segment 1200-900 ends before it starts"),
    "empty segment": ("0 100 a\n100 100 b\n", 2, "segment 100-100 is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_error_names_file_and_line(tmp_path, case):
    text, line, message = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(SpeechgenError, match=message) as err:
        read_phn(path, n_samples=1000)
    assert str(err.value).startswith(f"{path} line {line}: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["", "\n  \n\t\n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SpeechgenError, match=f"{path}: no segments"):
        read_phn(path)


def test_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(SpeechgenError, match="no such file"):
        read_phn(tmp_path / "none.PHN")
    path = tmp_path / "latin.PHN"
    path.write_bytes(b"0 10 a\n10 20 \xe9\n")
    with pytest.raises(SpeechgenError, match="line 2: phone is not UTF-8"):
        read_phn(path)


def test_gaps_are_allowed_and_filled_with_silence(tmp_path):
    # Nothing before 10, a gap 20-30, nothing after 40 up to 50 samples.
    segments = read_phn(write(tmp_path, "10 20 aa\n30 40 b\n"), n_samples=50)
    inventory = PhoneInventory.from_segments([segments])
    assert inventory.phones == ["aa", "b", "h#"]
    ids = per_sample(segments, 50, inventory)
    assert ids.dtype == np.int32 and ids.shape == (50,)
    expected = ["h#"] * 10 + ["aa"] * 10 + ["h#"] * 10 + ["b"] * 10 + ["h#"] * 10
    assert [inventory.phones[i] for i in ids] == expected


def test_unknown_phone_lists_known_ones():
    inventory = PhoneInventory.from_segments([[Segment(0, 5, "aa")]])
    with pytest.raises(SpeechgenError, match=r"x\.PHN: phone 'zz' is not in .*aa, h#"):
        PhoneTrack([Segment(0, 5, "zz")], 5, inventory, source="x.PHN")


def test_inventory_is_sorted_and_round_trips():
    lists = [[Segment(0, 1, "sh"), Segment(1, 2, "iy")], [Segment(0, 3, "aa")]]
    inventory = PhoneInventory.from_segments(lists, fill="sil")
    assert inventory.phones == ["aa", "iy", "sh", "sil"]
    assert len(inventory) == 4 and inventory.index("sh") == 2 and "sil" in inventory
    saved = inventory.to_list()
    assert saved == ["aa", "iy", "sh", "sil"]
    back = PhoneInventory.from_list(saved)
    assert back == inventory
    # from_list keeps the saved order: the ids are the model's, not re-sorted.
    assert PhoneInventory.from_list(["z", "a"]).index("z") == 0


@pytest.mark.parametrize("bad", [["a", "a"], [], ["a b"], [""], "abc", [3]])
def test_inventory_rejects_bad_lists(bad):
    with pytest.raises(SpeechgenError, match="phone inventory"):
        PhoneInventory.from_list(bad)


def test_folding_maps_61_timit_phones_to_39_classes():
    assert len(TIMIT_61) == 61 and len(set(TIMIT_61)) == 61
    folded = {fold_phone(p, TIMIT_FOLD_39) for p in TIMIT_61}
    assert None in folded  # q is deleted
    assert len(folded - {None}) == 39
    assert set(TIMIT_FOLD_39) <= set(TIMIT_61)
    assert fold_phone("ax-h", TIMIT_FOLD_39) == "ah"
    assert fold_phone("pcl", TIMIT_FOLD_39) == "h#"
    # CMU phones outside the map pass through unchanged.
    assert fold_phone("aa", TIMIT_FOLD_39) == "aa" and fold_phone("xyz", TIMIT_FOLD_39) == "xyz"


def test_fold_segments_gives_q_to_its_neighbour():
    segs = [
        Segment(0, 10, "q"),  # first: goes to the next one
        Segment(10, 20, "ix"),
        Segment(20, 25, "q"),  # touches the previous: goes to it
        Segment(30, 35, "q"),  # touches neither: becomes a gap
        Segment(40, 50, "dcl"),
    ]
    assert fold_segments(segs, TIMIT_FOLD_39) == [
        Segment(0, 25, "ih"),
        Segment(40, 50, "h#"),
    ]


def _read_phn_bytes(content, n_samples):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.PHN"
        path.write_bytes(content)
        try:
            segments = read_phn(path, n_samples)
        except SpeechgenError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            return None
        return segments


LINE = st.one_of(
    st.text(max_size=30),
    st.tuples(
        st.integers(-5, 300), st.integers(-5, 300), st.sampled_from(["aa", "h#", "ax-h", "é"])
    ).map(lambda t: "%d %d %s" % t),
)


@FAST
@given(st.lists(LINE, max_size=8), st.one_of(st.none(), st.integers(0, 300)))
def test_random_text_only_raises_speechgen_error(lines, n_samples):
    segments = _read_phn_bytes("\n".join(lines).encode("utf-8", "surrogatepass"), n_samples)
    if segments is not None:
        ends = [0] + [s.end for s in segments]
        assert all(a <= s.start < s.end for a, s in zip(ends, segments))


@FAST
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(0, 300)))
def test_random_bytes_only_raise_speechgen_error(content, n_samples):
    _read_phn_bytes(content, n_samples)


@st.composite
def segment_lists(draw):
    segments, at = [], draw(st.integers(0, 50))
    for _ in range(draw(st.integers(1, 10))):
        length = draw(st.integers(1, 500))
        phone = draw(st.text("abcdefghijklmnopqrstuvwxyz#-", min_size=1, max_size=4))
        segments.append(Segment(at, at + length, phone))
        at += length + draw(st.sampled_from([0, 0, 0, 7]))  # mostly contiguous, some gaps
    return segments


@FAST
@given(segment_lists())
def test_valid_segments_round_trip(segments):
    text = "".join(f"{s.start} {s.end} {s.phone}\n" for s in segments)
    n_samples = segments[-1].end
    assert _read_phn_bytes(text.encode(), n_samples) == segments
    inventory = PhoneInventory.from_segments([segments])
    ids = per_sample(segments, n_samples, inventory)
    for s in segments:
        assert (ids[s.start : s.end] == inventory.index(s.phone)).all()


@pytest.mark.corpus
def test_real_corpora_labels_parse():
    timit = CORPORA / "timit-tts"
    if not timit.is_dir():
        pytest.skip(f"{CORPORA} is absent (development corpora are not part of a clone)")
    phns = sorted(timit.rglob("*.PHN"))
    assert phns, f"no .PHN files under {timit}"
    segment_lists = []
    for phn in phns:
        audio = read_audio(phn.with_suffix(".WAV"))
        segments = read_phn(phn, n_samples=len(audio))
        assert audio.rate == 16000
        # The corpus README promises contiguous labels from 0 to the end.
        assert segments[0].start == 0 and segments[-1].end == len(audio)
        segment_lists.append(fold_segments(segments, TIMIT_FOLD_39))
    inventory = PhoneInventory.from_segments(segment_lists)
    assert len(inventory) <= 39
    first = segment_lists[0]
    ids = per_sample(first, first[-1].end, inventory, source=phns[0])
    assert ids.shape == (first[-1].end,)

    prompts = CORPORA / "prompts-real"
    for phn in sorted(prompts.glob("*.PHN"))[:10]:
        assert read_phn(phn)
