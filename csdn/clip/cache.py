"""A SHA-256-verified download cache: atomic, retried only where retrying helps, cleaning up after killed runs.

Cache directory: ``root`` if given, else the environment variable ``CSDN_CLIP_CACHE``, else ``~/.cache/clip``
(the directory OpenAI's ``clip`` package uses, so its downloads are reused). Each transfer streams into a
temporary file ``.<name>.<host>-<pid>.<hex>.tmp`` next to the target and is renamed into place only after its
full SHA-256 matched. Temporary files of killed downloads (their process is gone, or they have not been written
to for :data:`STALE_AFTER_S`) are removed by the next download of the same file.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .tokenizer import file_sha256

logger = logging.getLogger(__name__)

CACHE_ENV = "CSDN_CLIP_CACHE"
#: A temporary download file not written to for this many seconds belongs to a dead download.
STALE_AFTER_S = 600.0
_CHUNK = 1 << 20


class DownloadError(FileNotFoundError):
    """A file is neither cached nor downloadable; the message names the file to place and where.

    A ``FileNotFoundError``: the command line reports it as one ``csdn: error:`` line (exit status 2).
    """


class _NoRetry(Exception):
    """A failure that another attempt cannot fix (host unreachable, HTTP 4xx, unwritable cache)."""


def default_cache_dir() -> Path:
    """``$CSDN_CLIP_CACHE`` if set, else ``~/.cache/clip`` (read at call time, never at import)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "clip").expanduser()


def url_sha256(url: str) -> str:
    """The SHA-256 an OpenAI checkpoint URL carries as its second-to-last path component."""
    return url.rstrip("/").split("/")[-2]


def _owner() -> str:
    """``<host>-<pid>`` of this process, as written into its temporary file names."""
    return f"{re.sub(r'[^A-Za-z0-9]', '_', socket.gethostname())}-{os.getpid()}"


def _is_stale(tmp: Path, name: str) -> bool:
    """True if ``tmp`` (a temporary file of ``name``) belongs to no running download."""
    try:
        if time.time() - tmp.stat().st_mtime > STALE_AFTER_S:
            return True
    except FileNotFoundError:
        return False
    owner = tmp.name[len(name) + 2 :].split(".")[0]  # "<host>-<pid>" (legacy names: a hex id, judged by age)
    host, _, pid = owner.rpartition("-")
    if host != _owner().rpartition("-")[0] or not pid.isdigit() or os.name == "nt":  # nt: os.kill would kill
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: the process exists
        return False
    return False


def clean_stale_downloads(target: Path) -> list[Path]:
    """Remove temporary files of ``target`` left by killed downloads (also torch.hub's ``.partial`` files).

    Returns:
        The removed paths.
    """
    removed = []
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*"):
        if tmp.name.endswith((".tmp", ".partial")) and tmp.is_file() and _is_stale(tmp, target.name):
            tmp.unlink(missing_ok=True)
            logger.info("removed %s, left by a killed download", tmp)
            removed.append(tmp)
    return removed


def _open_url(url: str, timeout_s: float) -> http.client.HTTPResponse:
    """Open ``url``; a failure to reach the host or a 4xx status raises :class:`_NoRetry`."""
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "csdn"}), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code < 500:
            raise _NoRetry(f"HTTP {err.code} {err.reason}") from err
        raise
    except urllib.error.URLError as err:  # refused, DNS failure, no route, connect timeout: not retried
        raise _NoRetry(f"cannot reach the host ({err.reason})") from err


def _fetch_verified(url: str, target: Path, sha256: str, progress: bool, timeout_s: float) -> None:
    """Stream ``url`` into a temporary file next to ``target``, check its SHA-256, rename it into place.

    A transfer shorter than its Content-Length raises http.client.IncompleteRead; without one, the hash catches it.
    """
    tmp = target.with_name(f".{target.name}.{_owner()}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            file = open(tmp, "wb")  # noqa: SIM115 (closed below, also when the connection fails)
        except OSError as err:
            raise _NoRetry(f"cannot write into the cache directory {target.parent} ({err})") from err
        with file, _open_url(url, timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0)
            digest, done, shown = hashlib.sha256(), 0, 0
            while chunk := response.read1(_CHUNK):  # what has arrived, up to 1 MiB
                file.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress and total and done * 10 // total > shown:
                    shown = done * 10 // total
                    logger.info("downloading %s: %d%% of %.1f MB", target.name, 10 * shown, total / 1e6)
        if digest.hexdigest() != sha256:
            raise ValueError(f"downloaded file has SHA-256 {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def download(
    url: str,
    root: str | os.PathLike | None = None,
    sha256: str | None = None,
    *,
    retries: int = 3,
    backoff_s: float = 2.0,
    progress: bool = True,
    timeout_s: float = 20.0,
) -> Path:
    """Return a verified local copy of ``url``, downloading it into the cache if needed.

    A cached file with the wrong SHA-256 is reported and fetched again. Temporary files of earlier, killed
    downloads of the same file are removed first. A host that cannot be reached (no network, DNS failure,
    connection refused, no answer within ``timeout_s``) or an HTTP 4xx status fails at once; a broken or
    truncated transfer, a wrong SHA-256 or an HTTP 5xx status is retried.

    Args:
        url: File URL.
        root: Cache directory (default :func:`default_cache_dir`).
        sha256: Expected hex SHA-256 (default: the URL's second-to-last path component).
        retries: Download attempts before giving up.
        backoff_s: Seconds to wait before attempt ``k + 1`` is ``backoff_s * k``.
        progress: Log the progress (every 10 %) at INFO level.
        timeout_s: Seconds to wait for the connection and for each read.

    Returns:
        Path of the verified file, ``root / basename(url)``.

    Raises:
        DownloadError: If no attempt produced a file with the expected SHA-256; the message says where to
            put a manually downloaded copy.
    """
    root = Path(root).expanduser() if root is not None else default_cache_dir()
    sha256 = (sha256 or url_sha256(url)).lower()
    target = root / url.rstrip("/").split("/")[-1]
    if target.is_file():
        actual = file_sha256(target)
        if actual == sha256:
            return target
        logger.warning("cached file %s has SHA-256 %s, expected %s; downloading it again", target, actual, sha256)
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale_downloads(target)
    except OSError as err:
        raise DownloadError(f"cannot use the CLIP cache directory {root} ({err}); set {CACHE_ENV}") from err
    errors = []
    for attempt in range(1, max(retries, 1) + 1):
        try:
            _fetch_verified(url, target, sha256, progress, timeout_s)
            return target
        except _NoRetry as err:
            errors.append(str(err))
            break
        except (OSError, ValueError, http.client.HTTPException) as err:  # reset, timeout, truncated, bad hash
            errors.append(f"attempt {attempt}: {err}")
            logger.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, err)
            if attempt < retries:
                time.sleep(backoff_s * attempt)
    raise DownloadError(
        f"could not download {url} ({'; '.join(errors)}). Without network access, download the file elsewhere, "
        f"check that its SHA-256 is {sha256}, and put it at {target} (or set {CACHE_ENV} to the directory that "
        "holds it, or pass the file's local path instead of the model name)"
    )
