"""Atomic file writes: a run is never left holding half a file.

Every file speechgen writes (models, checkpoints, WAVs, CSV, JSON, PNG) goes to a
temporary name in the same folder and is renamed over the target only once complete;
``os.replace`` is atomic on POSIX, so a crash or SIGKILL leaves either the old file or
the new one, never a truncated mix.
"""

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary keeps the target's suffix (Keras and matplotlib pick the format
    from it). On any exception the temporary is removed and the target is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
