"""The one exception type for a user's mistake.

Anything raised as :class:`SpeechgenError` is a problem with an input the user gave
(a file, a label, a config value, an output path). The CLI prints its message as one
line and exits 1 (2 for :class:`UsageError`); everything else is a bug and keeps its
traceback.
"""


class SpeechgenError(Exception):
    """A problem with the user's input. The message names the input and what to do."""

    exit_code = 1


class UsageError(SpeechgenError):
    """A wrong command line or config value (exit status 2, like click's usage errors)."""

    exit_code = 2
