"""WAV reading in every PCM width and container, channel mixing, bounded reads, writing, errors."""

import struct
import tracemalloc

import numpy as np
import pytest
import soundfile
from scipy.io import wavfile

import speechgen.data.audio as audio_module
from speechgen.data.audio import read_audio, write_wav
from speechgen.errors import SpeechgenError


@pytest.mark.parametrize(
    "dtype, full_scale, offset",
    [(np.uint8, 128, 128), (np.int16, 2**15, 0), (np.int32, 2**31, 0)],
)
def test_integer_pcm_scaled_to_unit_range(tmp_path, dtype, full_scale, offset):
    raw = np.array([0, 1, -1, 100, -100], dtype=np.int64) + offset
    path = tmp_path / "x.wav"
    wavfile.write(path, 8000, raw.astype(dtype))
    audio = read_audio(path)
    assert audio.rate == 8000 and len(audio) == 5
    np.testing.assert_allclose(audio.read(), (raw - offset) / full_scale, rtol=0, atol=1e-9)


def test_24_bit_pcm_written_by_hand(tmp_path):
    # Built byte by byte (3 little-endian bytes per sample), not by libsndfile.
    values = [0, 1, -1, 2**23 - 1, -(2**23)]
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 16000 * 3, 3, 24)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "x24.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body + b"\0")  # pad byte
    audio = read_audio(path)
    np.testing.assert_allclose(audio.read(), np.array(values) / 2**23, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_wav_used_as_is(tmp_path, dtype):
    raw = np.array([0.0, 0.5, -0.25, 0.999], dtype=dtype)
    wavfile.write(tmp_path / "f.wav", 16000, raw)
    np.testing.assert_allclose(read_audio(tmp_path / "f.wav").read(), raw, atol=1e-7)


@pytest.mark.parametrize(
    "container, subtype, endian",
    [("RF64", "PCM_24", "FILE"), ("WAVEX", "PCM_16", "FILE"), ("WAVEX", "PCM_24", "FILE"),
     ("WAVEX", "FLOAT", "FILE"), ("WAV", "PCM_16", "BIG"), ("RF64", "DOUBLE", "FILE")],
)
def test_rf64_extensible_and_rifx_containers(tmp_path, container, subtype, endian):
    x = np.stack([np.linspace(-0.9, 0.9, 300), np.linspace(0.5, -0.5, 300)], axis=1)
    path = tmp_path / "c.wav"
    soundfile.write(path, x, 22050, format=container, subtype=subtype, endian=endian)
    magic = {"RF64": b"RF64", "WAVEX": b"RIFF", "WAV": b"RIFX"}[container]
    assert path.read_bytes()[:4] == magic
    audio = read_audio(path)
    assert audio.rate == 22050 and len(audio) == 300 and audio.channels == 2
    np.testing.assert_allclose(audio.read(), x.mean(axis=1), atol=2 / 2**15)


def test_rf64_truncated_is_refused(tmp_path):
    path = tmp_path / "big.wav"
    soundfile.write(path, np.zeros(1000), 8000, format="RF64", subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SpeechgenError, match="WAV data truncated: the data chunk declares 2000 bytes"):
        read_audio(path)


def test_channels_are_averaged_to_mono(tmp_path):
    stereo = np.array([[1000, 3000], [-2000, 0]], dtype=np.int16)
    wavfile.write(tmp_path / "s.wav", 8000, stereo)
    audio = read_audio(tmp_path / "s.wav")
    assert audio.channels == 2
    np.testing.assert_allclose(audio.read(), [2000 / 32768, -1000 / 32768], atol=1e-7)


def test_ranges_and_chunks(tmp_path, monkeypatch):
    raw = np.arange(-500, 500, dtype=np.int16)
    wavfile.write(tmp_path / "r.wav", 8000, raw)
    audio = read_audio(tmp_path / "r.wav")
    np.testing.assert_allclose(audio.read(10, 20), raw[10:20] / 32768)
    assert audio.read(995, 2000).shape == (5,) and audio.read(30, 10).shape == (0,)
    monkeypatch.setattr(audio_module, "CHUNK", 64)
    blocks = list(audio.chunks(100, 400))
    assert [len(b) for b in blocks] == [64, 64, 64, 64, 44]
    np.testing.assert_allclose(np.concatenate(blocks), raw[100:400] / 32768)


def test_read_seeks_and_reads_only_the_range(tmp_path, monkeypatch):
    wavfile.write(tmp_path / "r.wav", 8000, np.zeros(100_000, np.int16))
    audio = read_audio(tmp_path / "r.wav")
    calls = []
    seek, read = soundfile.SoundFile.seek, soundfile.SoundFile.read
    monkeypatch.setattr(soundfile.SoundFile, "seek", lambda self, n, *a: calls.append(("seek", n)) or seek(self, n, *a))
    monkeypatch.setattr(
        soundfile.SoundFile, "read", lambda self, n=-1, **kw: calls.append(("read", n)) or read(self, n, **kw)
    )
    assert audio.read(70_000, 70_010).shape == (10,)
    # soundfile's own seeks (to find the position) may follow; the reads are one block.
    assert calls[0] == ("seek", 70_000)
    assert [c for c in calls if c[0] == "read"] == [("read", 10)]


def test_memory_is_bounded_by_the_block_not_the_file(tmp_path, monkeypatch):
    # 1 Mi samples of 24-bit PCM (3 MB; float32 of it would be 4 MB): a full pass in
    # 4 Ki-sample blocks and a short read each allocate tens of KB, never the file.
    n = 1 << 20
    path = tmp_path / "long24.wav"
    with soundfile.SoundFile(path, "w", 16000, 1, subtype="PCM_24") as f:
        for lo in range(0, n, 1 << 16):
            f.write(np.full(1 << 16, 0.25, np.float32))
    monkeypatch.setattr(audio_module, "CHUNK", 4096)
    tracemalloc.start()
    try:
        audio = read_audio(path)
        total = sum(float(b.sum(dtype=np.float64)) for b in audio.chunks())
        audio.read(n // 2, n // 2 + 100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == pytest.approx(0.25 * n, rel=1e-6)
    assert peak < 400_000, f"peak {peak} bytes: the file was loaded whole?"


def test_file_that_shrinks_after_opening(tmp_path):
    path = tmp_path / "s.wav"
    wavfile.write(path, 8000, np.zeros(1000, np.int16))
    audio = read_audio(path)
    path.write_bytes(path.read_bytes()[:1044])  # 500 frames left
    with pytest.raises(SpeechgenError, match="got shorter while being read"):
        audio.read(0, 1000)
    path.unlink()
    with pytest.raises(SpeechgenError, match="cannot be read"):
        audio.read(0, 10)


def test_write_wav_round_trip_and_clipping(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 2.0, -2.0])
    write_wav(tmp_path / "o.wav", 16000, x)
    rate, pcm = wavfile.read(tmp_path / "o.wav")
    assert rate == 16000 and pcm.dtype == np.int16
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, -32767])
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]  # no temporary left behind


def _error(path):
    with pytest.raises(SpeechgenError) as info:
        read_audio(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_errors_name_the_file_and_the_problem(tmp_path):
    assert "no such file" in _error(tmp_path / "missing.wav")
    assert "directory" in _error(tmp_path)
    (tmp_path / "text.wav").write_text("hello, not audio at all")
    assert "not a WAV" in _error(tmp_path / "text.wav")
    wavfile.write(tmp_path / "ok.wav", 8000, np.zeros(100, np.int16))
    (tmp_path / "trunc.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:30])
    assert "corrupt" in _error(tmp_path / "trunc.wav")
    wavfile.write(tmp_path / "empty.wav", 8000, np.zeros(0, np.int16))
    assert "no samples" in _error(tmp_path / "empty.wav")
    wavfile.write(tmp_path / "nan.wav", 8000, np.array([0.0, np.nan], np.float32))
    assert "NaN" in _error(tmp_path / "nan.wav")


@pytest.mark.parametrize("subtype", ["ULAW", "IMA_ADPCM", "GSM610"])
def test_compressed_wav_is_refused_with_a_hint(tmp_path, subtype):
    path = tmp_path / "c.wav"
    soundfile.write(path, np.zeros(3200), 8000, subtype=subtype)
    message = _error(path)
    assert f"WAV sample format {subtype}" in message and "not supported" in message and "sox" in message


def test_libsndfile_refusal_is_one_line(tmp_path):
    # A layout the chunk walk accepts but libsndfile cannot decode (format tag 0x1234).
    fmt = struct.pack("<HHIIHH", 0x1234, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 20) + bytes(20)
    path = tmp_path / "odd-tag.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert "corrupt or truncated WAV file (" in _error(path)
