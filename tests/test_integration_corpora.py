"""Data-backed checks on ../shared/corpora (slow; skipped where the corpora are absent)."""

import json

import pytest
from click.testing import CliRunner

from conftest import CORPORA, requires_corpora
from speechgen.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.corpus]


@requires_corpora("timit-tts")
def test_sample_phones_on_timit_tts_beats_the_baselines(tmp_path):
    data = CORPORA / "timit-tts"
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", str(data), "--out", str(run), "--config", "sample-phones",
        "--set", "epochs=2", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "SPHERE" not in result.output  # SPHERE files are read, not refused
    utt = data / "TEST" / "DR1" / "MUS21" / "SA1.WAV"
    rec = CliRunner().invoke(main, ["reconstruct", str(run / "model.keras"), str(utt), "--out-dir", str(tmp_path / "rec")])
    assert rec.exit_code == 0, rec.output
    assert (tmp_path / "rec" / "reconstruction.png").stat().st_size > 10_000
    ev = CliRunner().invoke(main, ["evaluate", str(run / "model.keras"), "--json"])
    assert ev.exit_code == 0, ev.output
    test = json.loads(ev.output)["splits"]["test"]
    assert test["model"] < test["zero"] and test["model"] < test["persistence"], test
    assert test["lpc"] is not None and test["gain_db"]["model"] > 0
    assert test["coverage"] > 0.9 and 0 < test["cold"] < 0.01  # state carried along each utterance
