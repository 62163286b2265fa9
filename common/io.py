"""Writing files so that an interruption (even kill -9) never leaves a half-written one.

Every file is written to a temporary file in the same folder (named `.<name>.<random>.tmp`, so no
reader ever takes it for a result), flushed to disk, then renamed over the target in one atomic
step: a reader sees the old file or the new one, never a mixture. A kill -9 can leave a stale
temporary file behind; `remove_stale_temporaries` clears them (the runner does, under its lock).
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

TEMP_SUFFIX = ".tmp"
LOCK_NAME = ".runner.lock"  # common.jobs.FolderLock's file: a folder a runner writes under its own lock


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, rename it onto `path`.

    If the block raises (or the process is interrupted), `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the result ordinary permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"  # serialise first: a failure writes nothing
    write_text(path, text)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a file written by atomic_path that was never renamed into place."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed process left under `folder`; returns those removed.

    Only call this while no other process can be writing into `folder` (e.g. holding its lock). A
    subfolder with a lock file of its own (a study's, inside a profile's folder) is another runner's
    to clean, and is left alone.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.rglob(f".*{TEMP_SUFFIX}"):
        inner = path.parent
        while inner != folder and not (inner / LOCK_NAME).exists():
            inner = inner.parent
        if inner != folder:  # inside a folder another runner may be writing
            continue
        if path.is_file() and is_temporary(path):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed
