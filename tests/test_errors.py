"""Every bad input answered clearly, nothing a user has is ever lost (docs/errors.md).

One test per row of the table in docs/errors.md (parametrized where rows share a
shape). Each drives the real CLI (or the library function the row is about) and
checks: the exit status, ONE line ``error: <input>: <problem>``, the input named,
the key words, no traceback, and no partial output (no --out created, no WAV
written, no ``.*.tmp-*`` left, an earlier file byte-identical).
"""

import errno
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.io import wavfile

from conftest import chord, tiny_sets, write_pcm16
from speechgen.data.audio import read_audio
from speechgen.cli import main
from speechgen.errors import SpeechgenError

RATE = 4000


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sets(**kw):
    return [x for s in tiny_sets(**kw) for x in ("--set", s)]


def one_line_error(result, code, *words):
    """Exit ``code``, one ``error: ...`` line holding ``words``, no traceback."""
    assert result.exit_code == code, result.output
    # stderr holds the answer alone; stdout may hold progress printed before it.
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for w in words:
        assert str(w) in lines[0], (w, lines[0])
    return lines[0]


def library_error(call, *words):
    """``call()`` raises SpeechgenError: one line holding ``words``."""
    with pytest.raises(SpeechgenError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for w in words:
        assert str(w) in message, (w, message)
    return message


def temps(folder):
    return sorted(p.name for p in Path(folder).rglob(".*.tmp-*"))


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def riff(fmt_fields, data, extra_chunks=b""):
    """A hand-made RIFF WAV: ``fmt_fields`` = (tag, channels, rate, byte_rate, align, bits)."""
    fmt = struct.pack("<HHIIHH", *fmt_fields)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm16_bytes(n=100, channels=1):
    buf = io.BytesIO()
    wavfile.write(buf, RATE, np.zeros((n, channels) if channels > 1 else n, np.int16))
    return buf.getvalue()


def phone_corpus(root, n_utts=6, seconds=0.6):
    """A flat folder of tone utterances with exact .PHN labels (aa = 220 Hz, then iy =
    440 Hz), from the shared fixtures (the same bytes this file once wrote itself)."""
    from fixtures import tone_corpus

    return tone_corpus(root, rate=RATE, n_utts=n_utts, seconds=seconds, segment_s=None, orders=(("aa", "iy"),),
                       continuous_phase=False, noise=0.01, name="u{}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny frame-level model and a tiny phone-conditioned one, trained once."""
    tmp = tmp_path_factory.mktemp("errors")
    data = write_pcm16(tmp / "chord.wav", RATE, chord(RATE, 20))
    result = run("train", data, "--out", tmp / "run", "--quiet", *sets(epochs=1))
    assert result.exit_code == 0, result.output
    corpus = phone_corpus(tmp / "phones")
    phone_sets = [
        "window=16", "hop=1", "phones=current", "units=[8]", "seq_len=20", "batch_size=2",
        "epochs=1", "max_batches=5",
    ]
    result = run("train", corpus, "--out", tmp / "prun", "--quiet", *[x for s in phone_sets for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    return {
        "tmp": tmp,
        "data": data,
        "frame": tmp / "run" / "model.keras",
        "phone": tmp / "prun" / "model.keras",
        "corpus": corpus,
    }


# --------------------------------------------------------------------------- Audio


def test_a01_missing_audio_file(tmp_path):
    line = one_line_error(run("train", tmp_path / "nope.wav", "--out", tmp_path / "r"), 1, "nope.wav", "no such file")
    assert not (tmp_path / "r").exists()
    assert line


def test_a02_directory_given_as_audio(models, tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    out = tmp_path / "g.wav"
    one_line_error(
        run("sample", models["frame"], "--prime", folder, "--out", out, "--seconds", 0.1),
        1, "adir", "is a directory",
    )
    assert not out.exists() and not temps(tmp_path)


def test_a03_permission_denied(tmp_path, monkeypatch):
    # Tests run as root, for whom chmod denies nothing: make open() refuse this one path.
    data = write_pcm16(tmp_path / "locked.wav", RATE, chord(RATE, 20))
    real_open = open

    def guarded(file, *args, **kwargs):
        if Path(file) == data:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("speechgen.data.audio.open", guarded, raising=False)
    one_line_error(run("train", data, "--out", tmp_path / "r"), 1, "locked.wav", "permission denied")
    assert not (tmp_path / "r").exists()


def test_a03b_permission_denied_for_real_as_nobody(tmp_path):
    # The same through the OS: a 0600 root file read by user nobody, when there is one.
    if os.geteuid() != 0 or subprocess.run(["id", "nobody"], capture_output=True).returncode:
        pytest.skip("needs root and a user 'nobody'")
    folder = Path("/tmp") / f"speechgen-perm-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    data = write_pcm16(folder / "secret.wav", RATE, chord(RATE, 0.1))
    data.chmod(0o600)
    code = (
        "import sys\nsys.path.insert(0, sys.argv[1])\n"
        "from speechgen.data.audio import read_audio\nfrom speechgen.errors import SpeechgenError\n"
        "try:\n    read_audio(sys.argv[2])\nexcept SpeechgenError as e:\n    print(e)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    try:
        out = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", code, root, str(data)],
            capture_output=True, text=True, timeout=60,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pytest.skip("setpriv unavailable")
    finally:
        data.unlink()
        folder.rmdir()
    if out.returncode and "Permission denied" in out.stderr and "python" in out.stderr.lower():
        pytest.skip("nobody cannot run this Python")
    assert out.stdout.strip() == f"{data}: permission denied", out.stdout + out.stderr


def test_a04_not_audio(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("hello, this is not audio\n")
    one_line_error(run("train", text, "--out", tmp_path / "r"), 1, "notes.wav", "not a WAV or NIST SPHERE", "sox")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "name, cut, words",
    [
        ("header", 30, ["corrupt or truncated WAV", "cut short"]),
        ("riff", 10, ["not a WAV"]),
        ("data", -7, ["WAV data truncated", "declares", "sox --ignore-length"]),
    ],
)
def test_a05_truncated_wav(tmp_path, name, cut, words):
    full = pcm16_bytes(200)
    path = tmp_path / f"cut-{name}.wav"
    path.write_bytes(full[:cut])
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, path.name, *words)
    assert not (tmp_path / "r").exists()


def test_a05b_truncated_sphere(tmp_path):
    # libsndfile takes a SPHERE's length from the file size: sample_count is checked here.
    lines = ["NIST_1A", "   1024", "channel_count -i 1", "sample_count -i 100", "sample_rate -i 4000",
             "sample_n_bytes -i 2", "sample_byte_format -s2 01", "end_head", ""]
    path = tmp_path / "cut.WAV"
    path.write_bytes("\n".join(lines).encode().ljust(1024) + bytes(150))
    one_line_error(
        run("train", path, "--out", tmp_path / "r"),
        1, "cut.WAV", "SPHERE data truncated", "holds 75 samples but its header declares 100",
    )
    assert not (tmp_path / "r").exists()


def test_a06_zero_samples(tmp_path):
    path = tmp_path / "empty.wav"
    wavfile.write(path, RATE, np.zeros(0, np.int16))
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, "empty.wav", "holds no samples")


def test_a07_odd_byte_count_in_16_bit_data(tmp_path):
    # 16-bit mono, but the data chunk declares (and holds) 201 bytes: half a sample at the end.
    path = tmp_path / "odd.wav"
    path.write_bytes(riff((1, 1, RATE, 2 * RATE, 2, 16), bytes(201)) + b"\0")
    one_line_error(
        run("train", path, "--out", tmp_path / "r"), 1, "odd.wav", "201 bytes", "not a whole number of 2-byte frames"
    )


def test_a08_broken_fmt_fields(tmp_path):
    path = tmp_path / "nochan.wav"
    path.write_bytes(riff((1, 0, RATE, 2 * RATE, 2, 16), bytes(200)))
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, "nochan.wav", "channels is 0")
    path = tmp_path / "nofmt.wav"
    data = bytes(100)
    path.write_bytes(b"RIFF" + struct.pack("<I", 12 + len(data)) + b"WAVE" + b"data" + struct.pack("<I", len(data)) + data)
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, "nofmt.wav", "data chunk before the fmt chunk")


def test_a09_24_bit_is_accepted(tmp_path):
    values = [0, 1, -1, 2**23 - 1, -(2**23)]
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    path = tmp_path / "x24.wav"
    path.write_bytes(riff((1, 1, 16000, 48000, 3, 24), data))
    np.testing.assert_allclose(read_audio(path).read(), np.array(values) / 2**23, atol=1e-9)


def test_a10_8_bit_unsigned_is_accepted(tmp_path):
    path = tmp_path / "u8.wav"
    wavfile.write(path, 8000, np.array([128, 0, 255, 192], np.uint8))
    np.testing.assert_allclose(read_audio(path).read(), [0, -1, 127 / 128, 0.5], atol=1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a11_float_nan_or_inf_refused(tmp_path, bad):
    path = tmp_path / "nan.wav"
    wavfile.write(path, RATE, np.array([0.0, 0.1, bad, 0.2], np.float32))
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, "nan.wav", "float sample 2", "NaN or infinite")


@pytest.mark.parametrize("dtype, channels", [(np.float32, 1), (np.float64, 2)])
def test_a12_float_beyond_unit_range_refused(tmp_path, dtype, channels):
    x = 0.5 * np.ones((5000, channels), dtype)
    x[4321, channels - 1] = -1.75
    path = tmp_path / "loud.wav"
    wavfile.write(path, RATE, x[:, 0] if channels == 1 else x)
    one_line_error(
        run("train", path, "--out", tmp_path / "r"),
        1, "loud.wav", "float sample 4321 is -1.75", "outside the float WAV range [-1, 1]", "rescale",
    )
    assert not (tmp_path / "r").exists()
    exact = tmp_path / "edge.wav"
    wavfile.write(exact, RATE, np.array([1.0, -1.0, 0.0], dtype))  # full scale itself is fine
    assert len(read_audio(exact)) == 3


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_a13_several_channels_are_averaged(tmp_path, channels):
    x = np.arange(4 * channels, dtype=np.int16).reshape(4, channels) * 1000
    path = tmp_path / f"c{channels}.wav"
    wavfile.write(path, RATE, x)
    audio = read_audio(path)
    assert audio.channels == channels
    np.testing.assert_allclose(audio.read(), x.mean(axis=1) / 32768, atol=1e-6)


def test_a14_mixed_sample_rates_in_a_corpus(tmp_path):
    (tmp_path / "c").mkdir()
    for i in range(4):
        write_pcm16(tmp_path / "c" / f"u{i}.wav", RATE, chord(RATE, 0.5))
    write_pcm16(tmp_path / "c" / "odd.wav", 16000, chord(16000, 0.5))
    one_line_error(
        run("train", tmp_path / "c", "--out", tmp_path / "r", "--set", "split=[0.6,0.2,0.2]"),
        1, "odd.wav", "sample rate 16000 Hz differs", "4000 Hz", "resample",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "header, words",
    [
        ("NIST_1A\n   1024\nsample_rate -i abc\nend_head\n", ["sample_rate = 'abc' is not an integer"]),
        ("NIST_1A\n   1024\nsample_count -i 10\nsample_rate -i 4000\n", ["no end_head"]),
        ("NIST_1A\n   zz\n", ["header size", "is not a number"]),
        ("NIST_1A\n   1024\nsample_count -i 10\nend_head\n", ["no sample_rate"]),
    ],
)
def test_a15_corrupt_sphere_header(tmp_path, header, words):
    path = tmp_path / "bad.WAV"
    raw = header.encode()
    path.write_bytes(raw + b" " * max(0, 1024 - len(raw)) + bytes(20))
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, "bad.WAV", *words)


@pytest.mark.parametrize(
    "coding, words",
    [("sample_coding -s25 pcm,embedded-shorten-v2.00", ["compressed SPHERE", "sph2pipe"]),
     ("sample_coding -s4 ulaw", ["companded SPHERE", "sph2pipe"])],
)
def test_a16_compressed_sphere(tmp_path, coding, words):
    path = tmp_path / "shn.WAV"
    lines = ["NIST_1A", "   1024", "sample_count -i 100", "sample_rate -i 4000", "sample_n_bytes -i 2",
             "sample_byte_format -s2 01", coding, "end_head", ""]
    path.write_bytes("\n".join(lines).encode().ljust(1024) + bytes(200))
    one_line_error(run("train", path, "--out", tmp_path / "r"), 1, "shn.WAV", *words)


@pytest.mark.parametrize("subtype", ["IMA_ADPCM", "ULAW"])
def test_a16b_compressed_wav(tmp_path, subtype):
    import soundfile

    path = tmp_path / "packed.wav"
    soundfile.write(path, chord(RATE, 0.5), RATE, subtype=subtype)
    one_line_error(
        run("train", path, "--out", tmp_path / "r"),
        1, "packed.wav", f"WAV sample format {subtype}", "not supported", "sox IN -b 16 OUT",
    )


def test_a17_training_audio_too_short(tmp_path):
    short = write_pcm16(tmp_path / "short.wav", RATE, chord(RATE, 0.5))
    one_line_error(
        run("train", short, "--out", tmp_path / "r", *sets(epochs=1)),
        1, "train split has 1600 samples", "too short", "give more audio",
    )
    assert not (tmp_path / "r").exists()


def test_a18_prime_shorter_than_the_window(models, tmp_path):
    prime = write_pcm16(tmp_path / "blip.wav", RATE, chord(RATE, 0.005))  # 20 samples < window 40
    out = tmp_path / "g.wav"
    one_line_error(
        run("sample", models["frame"], "--prime", prime, "--out", out, "--seconds", 0.1),
        1, "blip.wav", "20 samples", "shorter than the model's window of 40",
    )
    assert not out.exists() and not temps(tmp_path)


# -------------------------------------------------------------------------- Labels


def labelled_folder(root, phn_text, n=2000, utts=4):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(utts):
        write_pcm16(root / f"u{i}.wav", RATE, chord(RATE, n / RATE))
        (root / f"u{i}.PHN").write_text(f"0 {n // 2} h#\n{n // 2} {n} aa\n")
    (root / "u1.PHN").write_text(phn_text)
    return root


@pytest.mark.parametrize(
    "text, words",
    [
        ("0 abc h#\n", ["u1.PHN line 1", "end 'abc' is not an integer sample index"]),
        ("0 100 h#\n100 200\n", ["u1.PHN line 2", "expected 'start end phone', got 2 fields"]),
        ("0 1.5 h#\n", ["u1.PHN line 1", "end '1.5' is not an integer"]),
    ],
    ids=["non-numeric", "missing-field", "fractional"],
)
def test_l01_non_numeric_or_missing_fields(tmp_path, text, words):
    folder = labelled_folder(tmp_path / "c", text)
    one_line_error(run("train", folder, "--out", tmp_path / "r", "--set", "split=[0.5,0.5,0]"), 1, *words)
    assert not (tmp_path / "r").exists()


def test_l02_overlapping_segments(tmp_path):
    folder = labelled_folder(tmp_path / "c", "0 1000 h#\n900 2000 aa\n")
    one_line_error(
        run("train", folder, "--out", tmp_path / "r", "--set", "split=[0.5,0.5,0]"),
        1, "u1.PHN line 2", "segment 900-2000 overlaps the previous one", "line 1, 0-1000",
    )


def test_l03_unordered_segments(tmp_path):
    folder = labelled_folder(tmp_path / "c", "1000 2000 aa\n0 1000 h#\n")
    one_line_error(
        run("train", folder, "--out", tmp_path / "r", "--set", "split=[0.5,0.5,0]"),
        1, "u1.PHN line 2", "starts before the previous one", "time order",
    )


def test_l04_segment_past_the_audio(tmp_path):
    folder = labelled_folder(tmp_path / "c", "0 1000 h#\n1000 2500 aa\n")
    one_line_error(
        run("train", folder, "--out", tmp_path / "r", "--set", "split=[0.5,0.5,0]"),
        1, "u1.PHN line 2", "ends at sample 2500 but the audio has 2000 samples",
    )


def test_l05_unknown_phone_when_sampling(models, tmp_path):
    timeline = tmp_path / "zh.PHN"
    timeline.write_text("0 400 aa\n400 800 zh\n")
    out = tmp_path / "g.wav"
    one_line_error(
        run("sample", models["phone"], "--phones", timeline, "--out", out),
        1, "zh.PHN", "phone 'zh' is not in the phone inventory", "aa", "iy",
    )
    assert not out.exists() and not temps(tmp_path)


def test_l06_label_file_without_its_audio(tmp_path):
    folder = labelled_folder(tmp_path / "c", "0 1000 h#\n")
    (folder / "orphan.PHN").write_text("0 10 h#\n")
    one_line_error(
        run("train", folder, "--out", tmp_path / "r"), 1, "orphan.PHN", "label file without its audio",
    )


def test_l07_phones_for_a_model_without_phones(models, tmp_path):
    timeline = tmp_path / "t.PHN"
    timeline.write_text("0 400 aa\n")
    out = tmp_path / "g.wav"
    one_line_error(
        run("sample", models["frame"], "--phones", timeline, "--out", out),
        1, "t.PHN", "not phone-conditioned", "drop --phones",
    )
    assert not out.exists()


def test_l08_missing_phone_timeline(models, tmp_path):
    out = tmp_path / "g.wav"
    one_line_error(
        run("sample", models["phone"], "--phones", tmp_path / "none.PHN", "--out", out), 1, "none.PHN", "no such file"
    )
    assert not out.exists()


# -------------------------------------------------------------------------- Config


@pytest.fixture
def wav(tmp_path):
    return write_pcm16(tmp_path / "c.wav", RATE, chord(RATE, 2))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "bogus=1"], ["--set bogus", "unknown key 'bogus'", "known:"]),
        (["--set", "window=ten"], ["--set window", "window must be int", "'ten'"]),
        (["--set", "units=[64, x]"], ["--set units", "units must be list of integers"]),
        (["--set", "epochs=true"], ["--set epochs", "epochs must be int"]),
    ],
    ids=["unknown-key", "wrong-type", "wrong-list-item", "bool-for-int"],
)
def test_c01_unknown_key_or_wrong_type(wav, tmp_path, args, words):
    one_line_error(run("train", wav, "--out", tmp_path / "r", *args), 2, *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "setting, words",
    [
        ("window=0", "window must be positive, got 0"),
        ("batch_size=-2", "batch_size must be positive, got -2"),
        ("seq_len=0", "seq_len must be positive"),
        ("units=[32,0]", "units must be a non-empty list of positive sizes"),
        ("units=[]", "units must be a non-empty list"),
        ("learning_rate=0", "learning_rate must be positive"),
        ("hop=80", "hop (80) must not exceed window (40)"),
    ],
)
def test_c02_negative_or_zero_sizes(wav, tmp_path, setting, words):
    one_line_error(run("train", wav, "--out", tmp_path / "r", *sets(), "--set", setting), 2, "config:", words)
    assert not (tmp_path / "r").exists()


def test_c03_frame_longer_than_the_audio(wav, tmp_path):
    # 2 s of audio, a 4 s frame.
    one_line_error(
        run("train", wav, "--out", tmp_path / "r", *sets(window=16000, hop=16000)),
        1, "too short", "hop 16000", "give more audio or lower batch_size/seq_len",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("split", ["[0.5,0.3,0.1]", "[0.8,0.2]", "[1.2,-0.1,-0.1]"])
def test_c04_split_not_summing_to_one(wav, tmp_path, split):
    one_line_error(run("train", wav, "--out", tmp_path / "r", "--set", f"split={split}"), 2, "split", "summing to 1")


@pytest.mark.parametrize(
    "item, words",
    [("units=[1,", ["--set 'units=[1,'", "does not parse"]), ("learning_rate", ["expected key=value"]),
     ("=3", ["expected key=value"])],
)
def test_c05_set_that_does_not_parse(wav, tmp_path, item, words):
    one_line_error(run("train", wav, "--out", tmp_path / "r", "--set", item), 2, *words)


@pytest.mark.parametrize(
    "text, words",
    [
        ("- just\n- a list\n", ["expected a mapping of key: value, got list"]),
        ("42\n", ["expected a mapping of key: value, got int"]),
        ("window: [1, 2\n", ["not valid YAML"]),
        ("windw: 200\n", ["unknown key 'windw'"]),
    ],
    ids=["list", "scalar", "bad-yaml", "typo"],
)
def test_c06_yaml_config_that_is_not_a_mapping(wav, tmp_path, text, words):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(text)
    one_line_error(run("train", wav, "--out", tmp_path / "r", "--config", cfg), 2, "my.yaml", *words)
    assert not (tmp_path / "r").exists()


def test_c07_missing_config_file_or_preset(wav, tmp_path):
    one_line_error(
        run("train", wav, "--out", tmp_path / "r", "--config", "nosuchpreset"),
        2, "nosuchpreset", "no such config file or preset",
    )


# -------------------------------------------------------------------------- Models


def test_m01_model_not_a_zip(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    one_line_error(run("evaluate", fake), 1, "fake.keras", "not a Keras model", "zip archives")


def test_m02_zip_that_is_not_a_keras_model(tmp_path):
    junk = tmp_path / "junk.keras"
    with zipfile.ZipFile(junk, "w") as z:
        z.writestr("hello.txt", "hi")
        z.writestr("weights.bin", np.random.default_rng(0).bytes(300))
    one_line_error(run("evaluate", junk), 1, "junk.keras", "a zip archive but not a Keras model", "no config.json")
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("config.json", "{not json")
    one_line_error(run("evaluate", broken), 1, "broken.keras", "damaged .keras archive", "not valid JSON")


def test_m03_keras_model_of_another_kind(tmp_path):
    import keras

    other = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(other)
    out = tmp_path / "g.wav"
    one_line_error(run("sample", other, "--out", out), 1, "dense.keras", "is a Keras model but not a speechgen model (Sequential)")
    assert not out.exists()


def rewrite_config(src, dst, change):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return dst


def test_m04_model_of_a_newer_format(models, tmp_path):
    from speechgen.model import FORMAT_VERSION, load_model

    newer = rewrite_config(
        models["frame"], tmp_path / "future.keras",
        lambda c: c["config"].update(format=FORMAT_VERSION + 1),
    )
    one_line_error(run("evaluate", newer), 1, "future.keras", "made by a newer speechgen", "upgrade speechgen")
    # A file from before the key existed (no "format") is format 1 and still loads.
    older = rewrite_config(models["frame"], tmp_path / "old.keras", lambda c: c["config"].pop("format", None))
    assert load_model(older).window == 40
    assert json.loads(zipfile.ZipFile(models["frame"]).read("config.json"))["config"]["format"] == FORMAT_VERSION


def test_m05_model_with_a_lambda_layer(tmp_path):
    import keras

    risky = tmp_path / "lambda.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)]).save(risky)
    one_line_error(run("evaluate", risky), 1, "lambda.keras", "refused by Keras safe mode", "Lambda")


@pytest.mark.parametrize("what", ["directory", "missing", "truncated"])
def test_m06_model_path_is_a_directory_missing_or_cut(models, tmp_path, what):
    if what == "directory":
        path, words = tmp_path / "adir.keras", ["is a directory", "expected a .keras model file"]
        path.mkdir()
    elif what == "missing":
        path, words = tmp_path / "gone.keras", ["no such model file"]
    else:
        path, words = tmp_path / "cut.keras", ["damaged .keras archive", "cut short"]
        content = models["frame"].read_bytes()
        path.write_bytes(content[: len(content) // 2])
    out = tmp_path / "g.wav"
    one_line_error(run("sample", path, "--out", out), 1, path.name, *words)
    assert not out.exists()


# -------------------------------------------------------------------------- Output


def test_o01_unwritable_folder(models, tmp_path, wav):
    blocker = tmp_path / "afile"
    blocker.write_text("I am a file")
    one_line_error(run("train", models["data"], "--out", blocker / "run", *sets()), 1, "afile/run", "cannot write there")
    one_line_error(
        run("sample", models["frame"], "--out", blocker / "g.wav", "--seconds", 0.1), 1, "afile", "no such folder"
    )
    assert blocker.read_text() == "I am a file"
    one_line_error(run("train", models["data"], "--out", blocker, *sets()), 1, "afile", "exists and is not a directory")


def test_o02_existing_run_dir_kept_byte_identical(models, tmp_path):
    run_dir = models["tmp"] / "run"
    before = snapshot(run_dir)
    one_line_error(
        run("train", models["data"], "--out", run_dir, *sets(epochs=1)),
        1, "already holds files", "--force",
    )
    assert snapshot(run_dir) == before


def test_o03_existing_output_file_kept_byte_identical(models, tmp_path):
    out = tmp_path / "keep.wav"
    out.write_bytes(b"precious bytes")
    one_line_error(run("sample", models["frame"], "--out", out, "--seconds", 0.1), 1, "keep.wav", "already exists", "--force")
    assert out.read_bytes() == b"precious bytes"
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "original.wav").write_bytes(b"earlier")
    one_line_error(
        run("reconstruct", models["frame"], models["data"], "--out-dir", rec),
        1, "original.wav", "already exists", "--force",
    )
    assert [p.name for p in rec.iterdir()] == ["original.wav"] and (rec / "original.wav").read_bytes() == b"earlier"


def test_o04_full_disk_while_writing_a_wav(models, tmp_path, monkeypatch):
    from scipy.io import wavfile as scipy_wavfile

    out = tmp_path / "keep.wav"
    out.write_bytes(b"the earlier take")

    def full_disk(filename, rate, data):
        with open(filename, "wb") as f:
            f.write(b"RIFF\0\0")  # some bytes made it before the disk filled
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))

    monkeypatch.setattr(scipy_wavfile, "write", full_disk)
    one_line_error(
        run("sample", models["frame"], "--out", out, "--force", "--seconds", 0.05),
        1, "keep.wav", "No space left on device", "the earlier file is unchanged", "free some space",
    )
    assert out.read_bytes() == b"the earlier take"
    assert temps(tmp_path) == []


def test_o05_full_disk_while_saving_a_model(models, tmp_path, monkeypatch):
    import keras

    def full_disk(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\3\4 half a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))

    monkeypatch.setattr(keras.Model, "save", full_disk)
    out = tmp_path / "run"
    one_line_error(
        run("train", models["data"], "--out", out, "--quiet", *sets(epochs=1)),
        1, "model.keras", "No space left on device", "free some space",
    )
    assert not (out / "model.keras").exists() and temps(out) == []


KILL_WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from speechgen.files import atomic_path
target = sys.argv[2]
size = 8 << 20
version = 0
while True:
    version += 1
    block = bytes([version % 256]) * (1 << 20)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(version.to_bytes(8, "little"))
            for _ in range(size >> 20):
                f.write(block)
    print(version, flush=True)
"""


def test_o06_sigkill_during_a_save_never_leaves_a_truncated_file(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    target = tmp_path / "model.bin"
    rng = np.random.default_rng(7)
    versions_seen = 0
    for attempt in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, root, str(target)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if target.exists():
            content = target.read_bytes()
            assert len(content) == 8 + (8 << 20), f"attempt {attempt}: truncated to {len(content)} bytes"
            version = int.from_bytes(content[:8], "little")
            assert content[8:] == bytes([version % 256]) * (8 << 20)  # one complete version
            versions_seen += 1
        for stale in tmp_path.glob(".model.tmp-*"):  # a killed writer's temporary, never the target
            stale.unlink()
    assert versions_seen >= 1


def test_o07_debug_shows_the_traceback(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    result = run("--debug", "evaluate", fake)
    assert result.exit_code != 0 and isinstance(result.exception, SpeechgenError)
