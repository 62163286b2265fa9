"""Finding the corpus: Tiny Shakespeare, read from a path, the project's cache, or downloaded and verified.

It is found in this order: an explicit path (`--data` or the environment variable
GPT_LADDER_DATA), the project's cache `data/tinyshakespeare.txt` (git-ignored), else downloaded
from the canonical address into the cache and checked against its SHA-256 before use.
Nothing here decides a run's numbers (that is `common/data.py`), so it is outside the code fingerprint.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.request
from pathlib import Path

from common.errors import LadderError

CORPUS_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
CORPUS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DATA_ENV = "GPT_LADDER_DATA"
CACHE_PATH = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str = CORPUS_SHA256) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise LadderError(
            f"{path} does not match the Tiny Shakespeare checksum (SHA-256 {actual[:12]}…, "
            f"expected {expected[:12]}…): delete it and run again to download a fresh copy, "
            f"or save {CORPUS_URL} there by hand"
        )


def _remove_abandoned_downloads(dest: Path) -> None:
    """Delete temporary downloads (`.<name>.<pid>.tmp`) left by processes that no longer exist."""
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        pid = tmp.name[len(dest.name) + 2:-len(".tmp")]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive (e.g. another user's process): leave it
            pass


def download(url: str, dest: Path, expected_sha256: str = CORPUS_SHA256, attempts: int = 3,
             timeout: float = 30.0, progress: bool = True, backoff: float = 1.0) -> Path:
    """Download `url` to `dest` atomically: a temporary file, verified, then renamed into place.

    Shows a progress bar (unless progress=False), tries at most `attempts` times, waiting
    backoff, 2*backoff, ... seconds (at most 8) between tries. A truncated transfer or a file with
    the wrong SHA-256 never reaches `dest`; when every attempt fails, a LadderError says where to
    put the file by hand.
    """
    import http.client

    from tqdm import tqdm

    dest = Path(dest)
    attempts = max(1, int(attempts))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_downloads(dest)
    except OSError as exc:
        raise LadderError(f"cannot create {dest.parent} to download the corpus into ({exc.strerror}): "
                          f"{_by_hand(url, dest)}") from None
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if progress:
        print(f"downloading {url} to {dest}", file=sys.stderr, flush=True)
    last_error = "unknown error"
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                received = 0
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                          disable=not progress, leave=False) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            if total is not None and received < total:
                last_error = f"the transfer stopped after {received:,} of {total:,} bytes"
            else:
                actual = sha256_of(tmp)
                if actual == expected_sha256:
                    os.replace(tmp, dest)
                    return dest
                last_error = (f"the file received ({received:,} bytes) has SHA-256 {actual[:12]}…, "
                              f"expected {expected_sha256[:12]}…")
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            last_error = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        finally:
            tmp.unlink(missing_ok=True)
        if attempt < attempts:
            delay = min(backoff * 2.0 ** (attempt - 1), 8.0)
            if progress:
                print(f"download attempt {attempt} of {attempts} failed ({last_error}); "
                      f"retrying in {delay:g} s", file=sys.stderr, flush=True)
            time.sleep(delay)
    raise LadderError(f"could not download the corpus from {url} after {attempts} attempt"
                      f"{'s' if attempts > 1 else ''} ({last_error}): {_by_hand(url, dest)}")


def _by_hand(url: str, dest: Path) -> str:
    source = url if url == CORPUS_URL else f"{url} (or the original, {CORPUS_URL})"
    return f"download {source} by hand and save it as {dest}, or pass the path of a copy with --data"


def locate_corpus(path: str | os.PathLike | None = None, download_if_missing: bool = True) -> Path:
    """The corpus file to use: explicit path, then $GPT_LADDER_DATA, then the cache, then download."""
    explicit = path or os.environ.get(DATA_ENV)
    if explicit:
        explicit = Path(explicit).expanduser()
        if not explicit.exists():
            raise LadderError(f"corpus file {explicit} does not exist: pass the path of a text file with --data "
                              f"(or unset {DATA_ENV} to download Tiny Shakespeare)")
        return explicit
    if CACHE_PATH.exists():
        verify_checksum(CACHE_PATH)
        return CACHE_PATH
    if not download_if_missing:
        raise LadderError(f"no corpus at {CACHE_PATH}: run again with network access, or pass --data PATH")
    return download(CORPUS_URL, CACHE_PATH)


MAX_CORPUS_BYTES = 1 << 30  # 1 GiB: a character-level corpus beyond this would not fit the models here


def read_corpus(path: str | os.PathLike | None = None) -> str:
    """The corpus text, with a clear error for a directory, a FIFO or device, a file over 1 GiB, an
    unreadable, empty or non-UTF-8 file, and one holding NULs (UTF-16 or binary)."""
    path = locate_corpus(path)
    if path.is_dir():
        raise LadderError(f"corpus path {path} is a directory: pass the path of a text file with --data")
    if not path.is_file():  # a FIFO would block forever, a device such as /dev/zero never ends
        raise LadderError(f"corpus path {path} is not a regular file (a pipe or a device?): pass the path of a "
                          f"text file with --data")
    try:
        if path.stat().st_size > MAX_CORPUS_BYTES:
            raise LadderError(f"corpus file {path} is {path.stat().st_size / 2**30:.1f} GiB, over the 1 GiB this "
                              f"tool reads: pass a smaller text with --data")
        with open(path, "rb") as f:
            raw = f.read(MAX_CORPUS_BYTES + 1)
        if len(raw) > MAX_CORPUS_BYTES:
            raise LadderError(f"corpus file {path} holds more than the 1 GiB this tool reads: pass a smaller "
                              f"text with --data")
    except OSError as exc:
        raise LadderError(f"cannot read corpus file {path} ({exc.strerror}): check its permissions or pass another with --data")
    if not raw.strip():
        raise LadderError(f"corpus file {path} is empty: pass a text file with --data")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LadderError(f"corpus file {path} is not UTF-8 text (bad byte at offset {exc.start}): "
                          f"convert it to UTF-8 or pass another file with --data")
    if "\x00" in text:  # UTF-16 text and binary files decode as UTF-8 with NULs between the characters
        raise LadderError(f"corpus file {path} holds NUL characters (at offset {text.index(chr(0))}): it looks like "
                          f"UTF-16 or a binary file; convert it to UTF-8 text or pass another file with --data")
    return text


def corpus_id(path: str | os.PathLike | None = None) -> str | None:
    """None for Tiny Shakespeare, else the first 8 hex digits of the SHA-256 of the corpus's text.

    A results folder holds one experiment, so runs on another corpus go to a folder named by this id
    (common.run.results_folder). The cache and the download are verified to be Tiny Shakespeare; an
    explicit path (--data, $GPT_LADDER_DATA) is read and hashed, so a copy of it counts as it.
    """
    explicit = path or os.environ.get(DATA_ENV)
    if not explicit:
        return None
    digest = hashlib.sha256(read_corpus(explicit).encode("utf-8")).hexdigest()
    return None if digest == CORPUS_SHA256 else digest[:8]
