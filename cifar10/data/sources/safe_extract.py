"""Extracting a downloaded archive without trusting it.

Every member is checked before anything is written: no absolute paths, no `..`, no links, no
devices or fifos. Python's tarfile 'data' filter is applied on top, as a second line of defence.
"""
from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from cifar10.errors import PipelineError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError)


def archive_kind(path: Path) -> str | None:
    """'tar' (plain, gzip, bzip2 or xz compressed), 'zip', or None, judged by the leading bytes."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    return None


def _check_name(archive: Path, name: str) -> None:
    posix = PurePosixPath(name)
    if posix.is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise PipelineError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in posix.parts or ".." in PureWindowsPath(name).parts:
        raise PipelineError(f"{archive}: refusing member {name!r}: '..' in path")
    if "\x00" in name:
        raise PipelineError(f"{archive}: refusing member {name!r}: NUL byte in name")


def _tar_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        _check_name(archive, m.name)
        if m.issym() or m.islnk():
            raise PipelineError(f"{archive}: refusing member {m.name!r}: link to {m.linkname!r}")
        if not (m.isfile() or m.isdir()):
            raise PipelineError(f"{archive}: refusing member {m.name!r}: device, fifo or special file")
    return members


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for m in members:
        _check_name(archive, m.filename)
        kind = stat.S_IFMT(m.external_attr >> 16)  # 0 when the archiver recorded no Unix file type
        if kind == stat.S_IFLNK:
            raise PipelineError(f"{archive}: refusing member {m.filename!r}: symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise PipelineError(f"{archive}: refusing member {m.filename!r}: device, fifo or special file")
    return members


def safe_extract(archive: str | Path, target: str | Path) -> None:
    """Extract a .tar.gz/.tgz/.tar/.zip archive into `target` (created; must not exist or be empty).

    Raises:
        PipelineError: one line naming the archive and, for a refused member, the member; or
            naming the archive when it is corrupt or truncated. `target` is removed on failure.
    """
    archive, target = Path(archive), Path(target)
    kind = archive_kind(archive)
    if kind is None:
        raise PipelineError(f"{archive}: not a {'/'.join(ARCHIVE_SUFFIXES)} archive")
    if target.exists() and any(target.iterdir()):
        raise PipelineError(f"{target}: extraction folder is not empty")
    target.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target, members=_zip_members(archive, zf))
        else:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(target, members=_tar_members(archive, tar), filter="data")
    except PipelineError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    except tarfile.FilterError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise PipelineError(f"{archive}: refusing member: {exc}") from None
    except _CORRUPT as exc:
        shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno is not None:  # disk full, permissions: not the archive's fault
            raise PipelineError(f"{archive}: cannot extract into {target}: {exc.strerror}") from None
        raise PipelineError(
            f"{archive}: corrupt or truncated {kind} archive ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
