"""Downloads against a loopback HTTP server: good file, wrong hash, truncated transfer, stale cache, offline,
killed downloads' leftovers."""

import hashlib
import io
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from csdn.clip import DownloadError, download, load, tiny_state_dict
from csdn.clip import cache as cache_module
from csdn.clip import pretrained as pretrained_module

GOOD = b"pretend checkpoint bytes " * 1000
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; a path listed in ``server.truncate`` sends only half its bytes
    (while announcing the full Content-Length) that many times; one in ``server.unavailable`` answers 503 that
    many times; one in ``server.stall`` sends half its bytes, then hangs until the server shuts down."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.server.hits[self.path] += 1
        body = self.server.files.get(self.path)
        if body is None or self.server.unavailable[self.path] > 0:
            self.server.unavailable[self.path] -= body is not None
            self.send_error(404 if body is None else 503)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.truncate[self.path] > 0:
            self.server.truncate[self.path] -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        if self.path in self.server.stall:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.server.stopped.wait(30)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.hits, httpd.truncate, httpd.unavailable = {}, Counter(), Counter(), Counter()
    httpd.stall, httpd.stopped = set(), threading.Event()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.stopped.set()
    httpd.shutdown()
    httpd.server_close()


def _cache_files(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_good_file_is_downloaded_verified_and_then_reused(server, tmp_path):
    server.files[f"/{GOOD_SHA}/good.pt"] = GOOD
    url = server.url(f"/{GOOD_SHA}/good.pt")
    path = download(url, tmp_path, progress=False, backoff_s=0)
    assert path == tmp_path / "good.pt" and path.read_bytes() == GOOD
    assert download(url, tmp_path, progress=False) == path
    assert server.hits[f"/{GOOD_SHA}/good.pt"] == 1  # the verified cached copy is reused
    assert _cache_files(tmp_path) == ["good.pt"]


def test_wrong_hash_file_is_rejected_and_nothing_is_cached(server, tmp_path):
    wrong_sha = hashlib.sha256(b"something else").hexdigest()
    server.files[f"/{wrong_sha}/bad.pt"] = GOOD
    with pytest.raises(DownloadError, match=f"could not download .*{wrong_sha}.*put it at"):
        download(server.url(f"/{wrong_sha}/bad.pt"), tmp_path, retries=2, backoff_s=0, progress=False)
    assert server.hits[f"/{wrong_sha}/bad.pt"] == 2
    assert _cache_files(tmp_path) == []


def test_truncated_transfer_fails_without_leaving_a_partial_file(server, tmp_path):
    server.files[f"/{GOOD_SHA}/cut.pt"] = GOOD
    server.truncate[f"/{GOOD_SHA}/cut.pt"] = 99
    with pytest.raises(DownloadError, match="could not download"):
        download(server.url(f"/{GOOD_SHA}/cut.pt"), tmp_path, retries=3, backoff_s=0, progress=False)
    assert server.hits[f"/{GOOD_SHA}/cut.pt"] == 3
    assert _cache_files(tmp_path) == []


def test_truncated_transfer_is_retried(server, tmp_path):
    server.files[f"/{GOOD_SHA}/flaky.pt"] = GOOD
    server.truncate[f"/{GOOD_SHA}/flaky.pt"] = 1
    path = download(server.url(f"/{GOOD_SHA}/flaky.pt"), tmp_path, retries=3, backoff_s=0, progress=False)
    assert path.read_bytes() == GOOD and server.hits[f"/{GOOD_SHA}/flaky.pt"] == 2
    assert _cache_files(tmp_path) == ["flaky.pt"]


def test_cached_file_with_wrong_hash_is_reported_and_refetched(server, tmp_path, caplog):
    server.files[f"/{GOOD_SHA}/stale.pt"] = GOOD
    (tmp_path / "stale.pt").write_bytes(b"corrupted")
    with caplog.at_level(logging.WARNING, logger="csdn.clip.pretrained"):
        path = download(server.url(f"/{GOOD_SHA}/stale.pt"), tmp_path, progress=False, backoff_s=0)
    assert "downloading it again" in caplog.text
    assert path.read_bytes() == GOOD and _cache_files(tmp_path) == ["stale.pt"]


def _closed_port_url(path):
    probe = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens on this port any more
    return f"http://127.0.0.1:{port}{path}"


@pytest.mark.parametrize("where", ["closed-port", "unresolvable-host"])
def test_unreachable_host_fails_at_once_saying_where_to_put_the_file(tmp_path, where):
    url = {"closed-port": _closed_port_url(f"/{GOOD_SHA}/RN50.pt"),
           "unresolvable-host": f"http://csdn-offline-test.invalid/{GOOD_SHA}/RN50.pt"}[where]  # fmt: skip
    start = time.monotonic()
    with pytest.raises(DownloadError, match="cannot reach the host") as info:
        download(url, tmp_path, retries=3, backoff_s=5, progress=False)
    assert time.monotonic() - start < 3  # no retries, no back-off sleeps
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "attempt" not in message
    assert f"put it at {tmp_path / 'RN50.pt'}" in message and GOOD_SHA in message and "local path" in message
    assert _cache_files(tmp_path) == []


def test_http_client_errors_are_not_retried_server_errors_are(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url(f"/{GOOD_SHA}/missing.pt"), tmp_path, retries=3, backoff_s=0, progress=False)
    assert server.hits[f"/{GOOD_SHA}/missing.pt"] == 1
    server.files[f"/{GOOD_SHA}/busy.pt"] = GOOD
    server.unavailable[f"/{GOOD_SHA}/busy.pt"] = 2
    path = download(server.url(f"/{GOOD_SHA}/busy.pt"), tmp_path, retries=3, backoff_s=0, progress=False)
    assert path.read_bytes() == GOOD and server.hits[f"/{GOOD_SHA}/busy.pt"] == 3


def test_killed_download_leftovers_are_removed_by_the_next_download(server, tmp_path):
    server.files[f"/{GOOD_SHA}/big.pt"] = GOOD
    server.stall.add(f"/{GOOD_SHA}/big.pt")
    code = f"from csdn.clip import download; download({server.url(f'/{GOOD_SHA}/big.pt')!r}, {str(tmp_path)!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (server.hits[f"/{GOOD_SHA}/big.pt"] and any(tmp_path.glob(".big.pt.*.tmp"))):
            assert time.monotonic() < deadline and child.poll() is None, "the child never started writing"
            time.sleep(0.05)
    finally:
        child.kill()  # SIGKILL: no finally blocks run in the child
        child.wait()
    assert len(_cache_files(tmp_path)) == 1  # the killed download's temporary file stays behind
    server.stall.clear()
    path = download(server.url(f"/{GOOD_SHA}/big.pt"), tmp_path, progress=False)
    assert path.read_bytes() == GOOD and _cache_files(tmp_path) == ["big.pt"]


def test_only_stale_temporary_files_of_the_target_are_removed(tmp_path):
    target, owner = tmp_path / "RN50.pt", cache_module._owner()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = owner.rpartition("-")[0]
    files = {
        f".RN50.pt.{host}-{int(dead.stdout)}.{'a' * 32}.tmp": True,  # its process is gone
        f".RN50.pt.{'b' * 32}.tmp.{'c' * 32}.partial": True,  # old torch.hub leftover, not written for an hour
        f".RN50.pt.{owner}.{'d' * 32}.tmp": False,  # a running download (this process)
        f".RN50.pt.otherhost-1.{'e' * 32}.tmp": False,  # another machine's download, recently written
        f".RN50.pt.{'f' * 32}.tmp": False,  # no owner, recently written
        f".RN101.pt.{host}-{int(dead.stdout)}.{'a' * 32}.tmp": False,  # another file's download
    }
    for name in files:
        (tmp_path / name).write_bytes(b"partial")
    old = time.time() - cache_module.STALE_AFTER_S - 60
    os.utime(tmp_path / f".RN50.pt.{'b' * 32}.tmp.{'c' * 32}.partial", (old, old))
    removed = cache_module.clean_stale_downloads(target)
    assert sorted(p.name for p in removed) == sorted(name for name, stale in files.items() if stale)
    assert _cache_files(tmp_path) == sorted(name for name, stale in files.items() if not stale)


def test_load_of_an_unreachable_model_is_one_file_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setitem(pretrained_module._MODELS, "RN50", _closed_port_url(f"/{GOOD_SHA}/RN50.pt"))
    monkeypatch.setenv("CSDN_CLIP_CACHE", str(tmp_path / "cache"))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=f"put it at {tmp_path / 'cache' / 'RN50.pt'}"):
        load("RN50")
    assert time.monotonic() - start < 3


def test_load_by_name_downloads_into_env_cache_and_builds(server, tmp_path, monkeypatch):
    buffer = io.BytesIO()
    torch.save(tiny_state_dict("ViT"), buffer)
    payload = buffer.getvalue()
    sha = hashlib.sha256(payload).hexdigest()
    server.files[f"/{sha}/ViT-B-16.pt"] = payload
    monkeypatch.setitem(pretrained_module._MODELS, "ViT-B/16", server.url(f"/{sha}/ViT-B-16.pt"))
    monkeypatch.setenv("CSDN_CLIP_CACHE", str(tmp_path / "cache"))
    model, preprocess = load("ViT-B/16")
    assert (tmp_path / "cache" / "ViT-B-16.pt").read_bytes() == payload
    assert model.visual.grid_size == (14, 14)
    assert preprocess(torch.zeros(3, 300, 260, dtype=torch.uint8)).shape == (3, 224, 224)
