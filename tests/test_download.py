"""Downloading the corpus: atomic, verified, with progress and bounded retries, against a local HTTP server.

The server runs in a background thread on 127.0.0.1 (port chosen by the system) and serves the
real corpus, a truncated copy, a transfer cut short, a wrong file, a flaky path and a 404.
Nothing here touches the network.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import common.corpus as data_mod
from common.corpus import CORPUS_SHA256, download, locate_corpus
from common.errors import LadderError


class _Server:
    def __init__(self, body: bytes):
        self.body = body
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _send(self, payload: bytes, length: int | None = None, status: int = 200):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload) if length is None else length))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            def do_GET(self):
                server.hits[self.path] += 1
                body = server.body
                if self.path == "/good":
                    self._send(body)
                elif self.path == "/truncated":  # a shorter file, honestly labelled
                    self._send(body[: len(body) // 3])
                elif self.path == "/cut":  # announces the whole file, sends half, hangs up
                    self.close_connection = True
                    self._send(body[: len(body) // 2], length=len(body))
                elif self.path == "/wrong":
                    self._send(b"<html>Not the corpus you are looking for</html>\n" * 100)
                elif self.path == "/flaky":  # fails once, then serves the file
                    if server.hits[self.path] == 1:
                        self._send(b"busy", status=503)
                    else:
                        self._send(body)
                else:
                    self._send(b"not found", status=404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(corpus_path):
    body = Path(corpus_path).read_bytes()
    assert hashlib.sha256(body).hexdigest() == CORPUS_SHA256, "the test corpus is not Tiny Shakespeare"
    srv = _Server(body)
    yield srv
    srv.close()


@pytest.fixture
def sleeps(monkeypatch):
    """Record the waits between attempts instead of sleeping."""
    calls: list[float] = []
    monkeypatch.setattr(data_mod.time, "sleep", calls.append)
    return calls


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_download_verifies_and_renames_into_place(server, tmp_path, sleeps):
    dest = tmp_path / "cache" / "tinyshakespeare.txt"
    assert download(f"{server.url}/good", dest, expected_sha256=CORPUS_SHA256, attempts=2, progress=False) == dest
    assert dest.read_bytes() == server.body
    assert _leftovers(dest.parent) == []
    assert sleeps == []


def _assert_failed_cleanly(exc: LadderError, url: str, dest: Path):
    message = str(exc)
    assert url in message  # where it tried
    assert data_mod.CORPUS_URL in message  # where the file can be fetched by hand
    assert str(dest) in message  # and where to put it
    assert "--data" in message
    assert "\n" not in message


def test_truncated_file_is_rejected_after_bounded_retries(server, tmp_path, sleeps):
    dest = tmp_path / "tinyshakespeare.txt"
    url = f"{server.url}/truncated"
    before = server.hits[url.removeprefix(server.url)]
    with pytest.raises(LadderError) as info:
        download(url, dest, expected_sha256=CORPUS_SHA256, attempts=2, progress=False)
    assert server.hits["/truncated"] - before == 2  # retried, but only `attempts` times
    assert len(sleeps) == 1
    assert "SHA-256" in str(info.value) and "2 attempts" in str(info.value)
    _assert_failed_cleanly(info.value, url, dest)
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_transfer_cut_short_is_detected(server, tmp_path, sleeps):
    dest = tmp_path / "tinyshakespeare.txt"
    url = f"{server.url}/cut"
    with pytest.raises(LadderError) as info:
        download(url, dest, expected_sha256=CORPUS_SHA256, attempts=2, progress=False, timeout=10)
    assert "stopped after" in str(info.value) and f"of {len(server.body):,} bytes" in str(info.value)
    _assert_failed_cleanly(info.value, url, dest)
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_wrong_file_never_replaces_an_existing_one(server, tmp_path, sleeps):
    dest = tmp_path / "tinyshakespeare.txt"
    dest.write_text("an older copy\n")
    url = f"{server.url}/wrong"
    with pytest.raises(LadderError) as info:
        download(url, dest, expected_sha256=CORPUS_SHA256, attempts=2, progress=False)
    assert "SHA-256" in str(info.value)
    _assert_failed_cleanly(info.value, url, dest)
    assert dest.read_text() == "an older copy\n"
    assert _leftovers(tmp_path) == []


def test_a_transient_failure_is_retried(server, tmp_path, sleeps):
    dest = tmp_path / "tinyshakespeare.txt"
    assert download(f"{server.url}/flaky", dest, expected_sha256=CORPUS_SHA256, attempts=2, progress=False) == dest
    assert server.hits["/flaky"] == 2
    assert dest.read_bytes() == server.body
    assert len(sleeps) == 1


def test_backoff_is_bounded_and_http_errors_are_named(server, tmp_path, sleeps):
    dest = tmp_path / "tinyshakespeare.txt"
    url = f"{server.url}/missing"
    with pytest.raises(LadderError) as info:
        download(url, dest, expected_sha256=CORPUS_SHA256, attempts=5, progress=False, backoff=1.0)
    assert server.hits["/missing"] == 5
    assert sleeps == [1.0, 2.0, 4.0, 8.0]  # doubling, capped
    assert "Not Found" in str(info.value)
    _assert_failed_cleanly(info.value, url, dest)


def test_unreachable_server_fails_with_instructions(tmp_path, sleeps):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "tinyshakespeare.txt"
    url = f"http://127.0.0.1:{port}/input.txt"
    with pytest.raises(LadderError) as info:
        download(url, dest, attempts=2, progress=False, timeout=5)
    _assert_failed_cleanly(info.value, url, dest)
    assert not dest.exists()


def test_progress_is_shown(server, tmp_path, sleeps, capsys):
    dest = tmp_path / "tinyshakespeare.txt"
    download(f"{server.url}/good", dest, expected_sha256=CORPUS_SHA256, attempts=1, progress=True)
    err = capsys.readouterr().err
    assert f"downloading {server.url}/good to {dest}" in err
    assert "downloading tinyshakespeare.txt" in err  # the progress bar


def test_abandoned_temporary_downloads_are_removed(server, tmp_path, sleeps):
    dest = tmp_path / "tinyshakespeare.txt"
    dead = tmp_path / f".{dest.name}.999999999.tmp"  # no such process
    dead.write_text("half a download")
    download(f"{server.url}/good", dest, expected_sha256=CORPUS_SHA256, attempts=1, progress=False)
    assert not dead.exists()
    assert dest.read_bytes() == server.body


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(data_mod.DATA_ENV, raising=False)
    cache = tmp_path / "data" / "tinyshakespeare.txt"
    monkeypatch.setattr(data_mod, "CACHE_PATH", cache)
    return cache


def test_locate_corpus_downloads_into_the_cache_once(server, fresh_cache, monkeypatch, sleeps):
    monkeypatch.setattr(data_mod, "CORPUS_URL", f"{server.url}/good")
    before = server.hits["/good"]
    assert locate_corpus() == fresh_cache
    assert fresh_cache.read_bytes() == server.body
    assert locate_corpus() == fresh_cache  # the second time the cache is used
    assert server.hits["/good"] - before == 1
    assert _leftovers(fresh_cache.parent) == []


def test_locate_corpus_failure_says_where_to_put_the_file(server, fresh_cache, monkeypatch, sleeps):
    url = f"{server.url}/wrong"
    monkeypatch.setattr(data_mod, "CORPUS_URL", url)
    before = server.hits["/wrong"]
    with pytest.raises(LadderError) as info:
        locate_corpus()
    message = str(info.value)
    assert url in message and str(fresh_cache) in message and "by hand" in message
    assert server.hits["/wrong"] - before == 3  # the default number of attempts, no more
    assert not fresh_cache.exists()
    assert _leftovers(fresh_cache.parent) == []
