"""Downloads against a loopback HTTP server: good file, wrong hash, truncated transfer, stale cache, offline."""

import hashlib
import io
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from csdn.clip import DownloadError, download, load, tiny_state_dict
from csdn.clip import pretrained as pretrained_module

GOOD = b"pretend checkpoint bytes " * 1000
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; a path listed in ``server.truncate`` sends only half its bytes
    (while announcing the full Content-Length) that many times."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.server.hits[self.path] += 1
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.truncate[self.path] > 0:
            self.server.truncate[self.path] -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.hits, httpd.truncate = {}, Counter(), Counter()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
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


def test_offline_error_says_where_to_put_the_file(tmp_path):
    probe = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens on this port any more
    with pytest.raises(DownloadError, match=f"put it at {tmp_path / 'RN50.pt'}"):
        download(f"http://127.0.0.1:{port}/{GOOD_SHA}/RN50.pt", tmp_path, retries=1, progress=False)
    assert _cache_files(tmp_path) == []


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
