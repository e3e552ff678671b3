"""Loading speechgen models: archive checks before anything is deserialised, Keras
safe mode, one-line errors for every way a file can be wrong."""

import keras

from ..errors import SpeechgenError
from .model import FORMAT_VERSION, SpeechRNN, newer_message


def _holds_lambda(node):
    """Whether a Keras config tree contains a ``Lambda`` layer (Python code)."""
    if isinstance(node, dict):
        if node.get("class_name") == "Lambda":
            return True
        return any(_holds_lambda(v) for v in node.values())
    if isinstance(node, list):
        return any(_holds_lambda(v) for v in node)
    return False


def _inspect_archive(path):
    """Refuse, from ``config.json`` alone, archives that are not speechgen models.

    Nothing is deserialised, so a foreign model's layers never run.
    """
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise SpeechgenError(f"{path}: a zip archive but not a Keras model (no config.json inside)")
            text = archive.read("config.json")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError, ValueError) as err:
        raise SpeechgenError(f"{path}: damaged .keras archive ({err}); save or copy the model again") from None
    try:
        config = json.loads(text)
    except ValueError:
        raise SpeechgenError(f"{path}: damaged .keras archive (config.json is not valid JSON)") from None
    if not isinstance(config, dict):
        raise SpeechgenError(f"{path}: damaged .keras archive (config.json is not a model config)")
    if _holds_lambda(config):
        raise SpeechgenError(
            f"{path}: refused by Keras safe mode: the model holds a Lambda layer (arbitrary "
            "Python code), which speechgen models never contain; load only models made by speechgen"
        )
    name = config.get("class_name")
    if name != "SpeechRNN" or config.get("registered_name", "speechgen>SpeechRNN") != "speechgen>SpeechRNN":
        raise SpeechgenError(f"{path}: is a Keras model but not a speechgen model ({name})")
    inner = config.get("config")
    version = inner.get("format", 1) if isinstance(inner, dict) else 1
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SpeechgenError(f"{path}: {newer_message(version)}")


def load_model(path, compile=False):
    """Load a ``.keras`` file saved by speechgen, in Keras safe mode.

    Args:
        compile: also restore the optimizer and its state (checkpoints, for resuming).

    Raises:
        SpeechgenError: missing or unreadable file, not a Keras archive, not a
        speechgen model, made by a newer speechgen, or refused by safe mode.
    """
    import zipfile
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise SpeechgenError(f"{path}: no such model file")
    if path.is_dir():
        raise SpeechgenError(f"{path}: is a directory, expected a .keras model file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise SpeechgenError(f"{path}: permission denied") from None
    except OSError as err:
        raise SpeechgenError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            zip_start = f.read(4) == b"PK\x03\x04"
        if zip_start:  # a zip whose end (the directory) is missing: cut short
            raise SpeechgenError(
                f"{path}: damaged .keras archive (cut short: no zip directory at its end); "
                "save or copy the model again"
            )
        raise SpeechgenError(f"{path}: not a Keras model (.keras files are zip archives)")
    _inspect_archive(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=compile)
    except SpeechgenError as err:
        raise SpeechgenError(f"{path}: {err}") from None
    except Exception as err:  # Keras raises many types for foreign or broken archives
        text = " ".join(str(err).split())
        if "safe_mode" in text or "arbitrary code" in text:
            raise SpeechgenError(
                f"{path}: refused by Keras safe mode (the model holds Python code); "
                "load only models made by speechgen"
            ) from None
        first = text[:200] if text else type(err).__name__
        raise SpeechgenError(f"{path}: cannot be loaded as a speechgen model ({first})") from None
    if not isinstance(model, SpeechRNN):
        raise SpeechgenError(
            f"{path}: is a Keras model but not a speechgen model ({type(model).__name__})"
        )
    return model
