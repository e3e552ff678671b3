"""Config resolution: defaults -> files -> --set, and every kind of bad value refused."""

import pytest

from speechgen.config import CONFIG_DIR, Config, load_config
from speechgen.errors import UsageError


def test_presets_load_and_override_in_order(tmp_path):
    for preset in ("tiny", "frame16k", "frame200"):
        load_config([preset])
    extra = tmp_path / "extra.yaml"
    extra.write_text("units: [8, 8]\nlearning_rate: 0.5\n")
    config = load_config(["frame16k", str(extra)], ["learning_rate=1e-4", "split=[0.7,0.2,0.1]"])
    assert config.units == [8, 8] and config.window == 16000
    assert config.learning_rate == pytest.approx(1e-4)
    assert config.split == [0.7, 0.2, 0.1]


def test_frame16k_is_the_write_up():
    c = load_config([CONFIG_DIR / "frame16k.yaml"])
    assert (c.window, c.hop, c.seq_len, c.units) == (16000, 16000, 50, [600, 600, 600])


@pytest.mark.parametrize(
    "sets, words",
    [
        (["nosuchkey=1"], "unknown key 'nosuchkey'"),
        (["window=ten"], "window must be int"),
        (["units=[64, -1]"], "units"),
        (["window=0"], "window must be positive"),
        (["hop=-3"], "hop must be positive"),
        (["hop=400", "window=200"], "must not exceed window"),
        (["split=[0.5,0.3,0.1]"], "summing to 1"),
        (["dropout=1.5"], "dropout"),
        (["output_activation=softmax"], "output_activation must be one of"),
        (["learning_rate"], "expected key=value"),
        (["units=[1,"], "does not parse"),
        (["epochs=true"], "epochs must be int"),
    ],
)
def test_bad_values_are_usage_errors(sets, words):
    with pytest.raises(UsageError) as info:
        load_config([], sets)
    assert words in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(UsageError, match="no such config file or preset"):
        load_config([str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: [1, 2\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config([str(bad)])
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UsageError, match="expected a mapping"):
        load_config([str(bad)])
    bad.write_text("windw: 200\n")
    with pytest.raises(UsageError, match=f"{bad}: unknown key 'windw'"):
        load_config([str(bad)])


def test_defaults_are_valid():
    assert load_config() == Config()
