"""Config resolution: defaults -> files -> --set, and every kind of bad value refused."""

import pytest

from pathlib import Path

import yaml

from speechgen.config import (
    CONFIG_DIR, Config, changed_keys, check_resumable, load_config, presets, split_run_state, updated_run_state,
)
from speechgen.errors import SpeechgenError, UsageError

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_presets_load_and_override_in_order(tmp_path):
    for preset in ("tiny", "frame16k", "frame200"):
        load_config([preset])
    extra = tmp_path / "extra.yaml"
    extra.write_text("units: [8, 8]\nlearning_rate: 0.5\n")
    config = load_config(["frame16k", str(extra)], ["learning_rate=1e-4", "split=[0.7,0.2,0.1]"])
    assert config.units == [8, 8] and config.window == 16000
    assert config.learning_rate == pytest.approx(1e-4)
    assert config.split == [0.7, 0.2, 0.1]


def test_the_package_ships_every_preset_of_configs():
    """speechgen/configs (inside the package) holds exactly the repository's configs/."""
    names = sorted(p.stem for p in REPO_CONFIGS.glob("*.yaml"))
    assert len(names) >= 6 and presets() == names
    for name in names:
        assert (CONFIG_DIR / f"{name}.yaml").read_bytes() == (REPO_CONFIGS / f"{name}.yaml").read_bytes()


@pytest.mark.parametrize("name", sorted(p.stem for p in REPO_CONFIGS.glob("*.yaml")))
def test_every_preset_loads_validates_and_sets_what_it_says(name):
    config = load_config([name])  # resolved and validated
    written = yaml.safe_load((REPO_CONFIGS / f"{name}.yaml").read_text()) or {}
    assert written, f"{name}.yaml sets no keys"
    values = config.to_dict()
    for key, value in written.items():
        assert values[key] == pytest.approx(value) if isinstance(value, float) else values[key] == value, key
    defaults = Config().to_dict()
    assert {k for k in values if values[k] != defaults[k]} <= set(written)  # nothing else moved


def test_unknown_preset_names_the_presets():
    with pytest.raises(UsageError) as info:
        load_config(["nosuchpreset"])
    assert str(info.value) == f"nosuchpreset: no such config file or preset (presets: {', '.join(presets())})"


def test_resume_diffing_names_the_first_key_it_cannot_apply():
    saved = {**Config().to_dict(), "data": "/x.wav"}
    config = load_config([], ["epochs=9", "patience=3", "dropout=0.25", "units=[8]"])
    assert changed_keys(saved, config) == ["units", "dropout"]  # the config's key order
    assert changed_keys(saved, load_config([], ["epochs=9", "max_batches=4"])) == []
    assert changed_keys({"window": 16000}, config) == []  # keys a saved config lacks count as unchanged
    assert changed_keys(saved, config, resumable=("epochs", "patience", "units")) == ["dropout"]
    with pytest.raises(SpeechgenError) as info:
        check_resumable(saved, config)
    assert str(info.value) == (
        "--set units: cannot change units when resuming (only epochs, patience, max_batches, "
        "checkpoint_batches, max_minutes, keep_epochs, listen_every, listen_seconds, listen_primes can); "
        "start a new run"
    )
    check_resumable(saved, load_config([], ["epochs=9"]))  # no error
    # What a run keeps and listens to does not touch the model: changeable on resume.
    check_resumable(saved, load_config([], ["keep_epochs=2", "listen_every=1", "listen_seconds=3", "listen_primes=2"]))
    # An older run's boolean hoist_input is today's on/off: not a change; auto is one.
    old = {**saved, "hoist_input": False}
    assert changed_keys(old, load_config([], ["hoist_input=off"])) == []
    assert changed_keys({**saved, "hoist_input": True}, load_config([], ["hoist_input=on"])) == []
    assert changed_keys(old, load_config([], [])) == ["hoist_input"]


def test_the_run_record_leaves_the_config_and_older_records_move_out():
    config = {**Config().to_dict(), "data": "/x.wav"}
    state = updated_run_state({}, epochs_done=3, batches_done=0, val_rmse=0.25)
    assert state == {"epochs_done": 3, "batches_done": 0, "val_rmse": 0.25}
    assert updated_run_state(state, batches_done=None) == {"epochs_done": 3, "val_rmse": 0.25}
    assert state["batches_done"] == 0  # a copy: the record given is unchanged
    # Files saved before the record had a place of its own kept it in train_config:
    # at its top level (first versions) or under "run" (format 2 before run_state).
    legacy = {**config, "val_rmse": 0.5, "epochs_done": 2}
    assert split_run_state(legacy) == (config, {"val_rmse": 0.5, "epochs_done": 2})
    nested = {**config, "run": {"epochs_done": 4, "batches_done": 7}}
    assert split_run_state(nested) == (config, {"epochs_done": 4, "batches_done": 7})
    assert split_run_state(None) == ({}, {}) and split_run_state(config) == (config, {})


def test_a_model_saved_with_the_run_record_inside_train_config_loads_with_it_outside(tmp_path):
    from speechgen.model import load_model
    from speechgen.model.model import SpeechRNN

    config = {**Config().to_dict(), "data": "/x.wav"}
    model = SpeechRNN(window=4, hop=4, units=[3], train_config=config)
    saved = model.get_config()
    saved["train_config"] = {**config, "run": {"val_rmse": 0.5}}  # as an older file holds it
    saved.pop("run_state")
    loaded = SpeechRNN.from_config(saved)
    assert loaded.train_config == config and loaded.run_state == {"val_rmse": 0.5}
    loaded.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert again.train_config == config and again.run_state == {"val_rmse": 0.5}


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
        (["output_activation=relu"], "output_activation must be one of tanh, linear, got 'relu'"),
        (["learning_rate"], "expected key=value"),
        (["units=[1,"], "does not parse"),
        (["epochs=true"], "epochs must be int"),
        (["utterances=together"], "utterances must be one of separate, joined, got 'together'"),
        (["pre_emphasis=1"], "pre_emphasis must be in [0, 1) (0: off), got 1.0"),
        (["pre_emphasis=-0.5"], "pre_emphasis must be in [0, 1)"),
        (["dither=-0.001"], "dither must not be negative, got -0.001"),
        (["listen_every=-1"], "listen_every must not be negative, got -1"),
        (["listen_seconds=0"], "listen_seconds must be positive, got 0"),
        (["listen_primes=0"], "listen_primes must be at least 1, got 0"),
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
