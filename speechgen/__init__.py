"""speechgen: generate raw audio with stateful recurrent networks.

Importing the package is cheap on purpose: TensorFlow and Keras are imported only by the
modules that need them (``model``, ``pipeline``, ``train``, ...), so ``speechgen --help``
answers at once.
"""

__version__ = "0.1.0"
