"""Getting one file from a URL or a local path onto disk, verified, in one piece or not at all."""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import BinaryIO, Iterable
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from cifar10.outputs import atomic_output, remove_output
from cifar10.console import progress
from cifar10.errors import PipelineError
from cifar10.schema.data import parse_checksum

CHUNK = 1 << 20
BACKOFF_SECONDS = 0.5  # first retry delay; doubles per attempt, capped at MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 8.0
_TRANSIENT_STATUS = {429} | set(range(500, 600))


def _unreachable(exc: Exception) -> bool:
    """The source could not be reached at all (not an answer it gave)."""
    return "connection failed" in str(exc) or "timeout" in str(exc)


class _Transient(Exception):
    """A failure worth another attempt (network hiccup, 5xx, 429)."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


def is_remote(source: str) -> bool:
    """True for http(s) URLs; file:// URLs and plain paths are local."""
    return urlparse(source).scheme in ("http", "https")


def local_path(source: str) -> Path:
    """The filesystem path of a local source (a plain path or a file:// URL)."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(url2pathname(unquote(parsed.path)))
    return Path(source).expanduser()


def fetch(
    source: str,
    dest: Path,
    checksum: str = "",
    retries: int = 3,
    timeout: float = 60.0,
    label: str = "",
    offline_hint: str = "",
) -> str:
    """Copy or download `source` to `dest` atomically and verify it.

    Args:
        source: http(s) URL, file:// URL or local path of a file.
        dest: where the file lands; it appears only once complete and verified.
        checksum: 'md5:<hex>', 'sha256:<hex>', a bare hex digest, or '' to compute a sha256.
        retries: extra attempts after a transient failure (connection error, timeout, 5xx, 429).
        timeout: seconds to wait for a connection or for the next bytes.
        label: what the source is called in messages and on the progress bar (e.g. a params key).
        offline_hint: what to do instead, added to the error when the source cannot be reached.

    Returns:
        The verified (or computed) checksum as 'algo:hex'.

    Raises:
        PipelineError: missing local file, HTTP error after retries, checksum mismatch.
    """
    prefix = f"{label}: " if label else ""
    try:
        expected = parse_checksum(checksum)
    except ValueError as exc:
        raise PipelineError(f"{prefix}{exc}") from None
    algo = expected[0] if expected else "sha256"
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        if is_remote(source):
            digest = _download(source, tmp, algo, retries, timeout, label, prefix, offline_hint)
        else:
            digest = _copy(local_path(source), tmp, algo, label, prefix)
        if expected and digest != expected[1]:
            remove_output(dest)  # a stale copy from an earlier run must not pass for this one
            raise PipelineError(
                f"{prefix}checksum mismatch for {source}: expected {algo}:{expected[1]}, got {algo}:{digest}"
            )
    return f"{algo}:{digest}"


def _write(chunks: Iterable[bytes], out: BinaryIO, algo: str, total: int | None, label: str) -> tuple[str, int]:
    hasher = hashlib.new(algo)
    size = 0
    with progress(total, label or "fetch", unit="B", unit_scale=True, unit_divisor=1024) as bar:
        for chunk in chunks:
            out.write(chunk)
            hasher.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    return hasher.hexdigest(), size


def _copy(path: Path, tmp: Path, algo: str, label: str, prefix: str) -> str:
    if not path.exists():
        raise PipelineError(f"{prefix}{path}: no such file")
    if not path.is_file():
        raise PipelineError(f"{prefix}{path}: not a regular file")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as out:
            digest, _ = _write(iter(lambda: src.read(CHUNK), b""), out, algo, path.stat().st_size, label)
    except OSError as exc:
        raise PipelineError(f"{prefix}cannot read {path}: {exc.strerror or exc}") from None
    return digest


def _download(url: str, tmp: Path, algo: str, retries: int, timeout: float, label: str, prefix: str,
              offline_hint: str) -> str:
    import requests

    attempts = retries + 1
    with requests.Session() as session:
        for attempt in range(1, attempts + 1):
            try:
                return _attempt(session, url, tmp, algo, timeout, label, prefix, attempt, attempts)
            except _Transient as exc:
                if attempt == attempts:
                    raise PipelineError(
                        f"{prefix}GET {url} failed after {attempts} attempt{'s' * (attempts > 1)}: {exc}"
                        + (f"; {offline_hint}" if offline_hint and _unreachable(exc) else "")
                    ) from None
                wait = exc.wait if exc.wait is not None else BACKOFF_SECONDS * 2 ** (attempt - 1)
                wait = min(wait, MAX_BACKOFF_SECONDS)
                print(f"warning: GET {url}: {exc}; retrying in {wait:.1f}s ({attempt}/{retries})", file=sys.stderr)
                time.sleep(wait)
    raise AssertionError("unreachable")


def _attempt(
    session, url: str, tmp: Path, algo: str, timeout: float, label: str, prefix: str, attempt: int, attempts: int
) -> str:
    import requests

    try:
        with session.get(url, stream=True, timeout=(timeout, timeout)) as resp:
            status = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
            if resp.status_code in _TRANSIENT_STATUS:
                retry_after = resp.headers.get("Retry-After", "")
                raise _Transient(status, float(retry_after) if retry_after.isdigit() else None)
            if resp.status_code >= 400:
                raise PipelineError(
                    f"{prefix}GET {url}: {status} on attempt {attempt} of {attempts} (client error, not retried)"
                )
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with open(tmp, "wb") as out:
                digest, size = _write(resp.iter_content(CHUNK), out, algo, total, label)
            if total is not None and "Content-Encoding" not in resp.headers and size != total:
                raise _Transient(f"connection closed after {size} of {total} bytes")
            return digest
    except requests.Timeout:
        raise _Transient(f"no data for {timeout:g}s (timeout)") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Transient(f"connection failed ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        raise PipelineError(f"{prefix}GET {url}: {type(exc).__name__}: {str(exc)[:200]}") from None
