"""Atomic file writes: a run is never left holding half a file.

Every file speechgen writes (models, checkpoints, WAVs, CSV, JSON, PNG) goes to a
temporary name in the same folder and is renamed over the target only once complete;
``os.replace`` is atomic on POSIX, so a crash or SIGKILL leaves either the old file or
the new one, never a truncated mix.
"""

import contextlib
import errno
import os
from pathlib import Path

from .errors import SpeechgenError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary keeps the target's suffix (Keras and matplotlib pick the format
    from it). On any exception the temporary is removed and the target is untouched.
    An ``OSError`` while writing or renaming (a full disk, a folder that went away)
    becomes a :class:`SpeechgenError` naming the target, with the earlier file kept.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except OSError as err:
        kept = "the earlier file is unchanged" if path.exists() else "nothing was written"
        hint = "; free some space and run again" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise SpeechgenError(
            f"{path}: cannot write ({err.strerror or err}); {kept}{hint}"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _flush_to_disk(tmp):
    """fsync the finished temporary so the rename never exposes unwritten blocks."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except IsADirectoryError:  # a writer that made a folder: nothing to flush
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
