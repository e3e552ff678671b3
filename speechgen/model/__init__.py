"""The model family: layers, heads, the registered Keras model, saving and loading.

Importing this package registers speechgen's Keras classes (needed before loading a
``.keras`` file).
"""

from .model import FORMAT_VERSION, SpeechRNN, build_model
from .saving import load_model

__all__ = ["FORMAT_VERSION", "SpeechRNN", "build_model", "load_model"]
