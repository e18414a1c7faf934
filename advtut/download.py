"""Verified, resumable downloads and safe archive extraction.

Everything the data layer fetches goes through two functions:

- :func:`download` streams a URL into ``<dest>.part``, resumes a partial file with an HTTP
  ``Range`` request, retries a bounded number of times, times out instead of hanging, checks the
  size and checksum, and only then renames the file to ``dest``. A half-written file never has the
  final name.
- :func:`extract` unpacks a ``.tar.gz`` or ``.zip`` into a temporary folder beside the target
  (tar members through ``tarfile``'s ``"data"`` filter, zip members checked to stay inside the
  folder), then renames the finished folder into place.

This module imports nothing else of ``advtut``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.std import tqdm

__all__ = ["DownloadError", "UnsafeArchiveError", "download", "extract", "file_digest"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed: network error, time-out, or a checksum/size mismatch."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the extraction folder (or is a link/device)."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm``: any name :mod:`hashlib` knows)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (starting at its current size)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "advtut", **({"Range": f"bytes={have}-"} if have else {})}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5],
            disable=not progress, mininterval=1.0,
        ) as bar:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        # the server closed early: keep the partial file, the next try resumes from it
        raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")


def download(
    urls: str | list[str],
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download ``urls`` (one URL or mirrors tried in order) to ``dest``, verified.

    The bytes go to ``dest + ".part"``; an interrupted download resumes from there on the next
    try (HTTP ``Range``). Each mirror gets ``retries`` tries, each network read waits at most
    ``timeout`` seconds. When the file is complete its ``size`` (bytes) and ``sha256`` or ``md5``
    (hex) are checked, where given; a mismatch deletes the partial file and raises. Only a
    verified file is renamed to ``dest``.

    Returns the path of the verified file. Raises :class:`DownloadError` naming every URL tried
    and the last error.
    """
    if sha256 is None and md5 is None:
        raise ValueError("download needs a checksum: pass sha256= or md5= (hex digest)")
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    urls = [urls] if isinstance(urls, str) else list(urls)
    errors: list[str] = []
    for url in urls:
        resumed = part.exists()  # a .part left by an earlier run may be stale
        for attempt in range(retries):
            try:
                _fetch_once(url, part, timeout=timeout, progress=progress)
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as err:
                errors.append(f"{url} (try {attempt + 1}): {err}")
                if isinstance(err, urllib.error.HTTPError) and err.code in (403, 404, 410):
                    break  # this mirror does not have it; retrying will not help
                time.sleep(min(2.0**attempt, 5.0) * 0.1)
                continue
            problem = _verify(part, sha256=sha256, md5=md5, size=size)
            if problem is None:
                os.replace(part, dest)
                return dest
            part.unlink(missing_ok=True)
            errors.append(f"{url}: {problem}")
            if resumed:  # the stale partial file was the problem: start this mirror afresh
                resumed = False
                continue
            break  # a corrupt file from this mirror: try the next one
    raise DownloadError(
        f"could not download {dest.name}; tried:\n  " + "\n  ".join(errors)
    )


def _verify(path: Path, *, sha256: str | None, md5: str | None, size: int | None) -> str | None:
    """None when ``path`` matches; else a sentence saying what differs."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            actual = file_digest(path, name)
            if actual != expected.lower():
                return f"{name} {actual}, expected {expected}"
    return None


def _check_zip_member(info: zipfile.ZipInfo, root: Path) -> None:
    mode = info.external_attr >> 16
    if (mode & 0o170000) not in (0, 0o100000, 0o040000):  # regular file or folder only
        raise UnsafeArchiveError(f"archive member {info.filename!r} is a link or device file")
    target = (root / info.filename).resolve()
    if not target.is_relative_to(root):
        raise UnsafeArchiveError(
            f"archive member {info.filename!r} would be written outside {root}"
        )


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike, *, folder: str) -> Path:
    """Unpack ``archive`` (``.tar``, ``.tar.gz``/``.tgz`` or ``.zip``) and move ``folder`` into place.

    ``folder`` is the top-level folder the archive holds (for example ``"flower_photos"``); the
    result is ``dest_dir / folder``. Members are unpacked into a temporary folder inside
    ``dest_dir`` first (tar through ``filter="data"``, zip members checked to stay inside), and the
    finished folder is renamed into place, so an interrupted extraction never looks complete.
    Raises :class:`UnsafeArchiveError` for a member that would escape, and ``FileNotFoundError``
    if the archive has no ``folder``.
    """
    if not folder or folder in (".", "..") or "/" in folder or "\\" in folder:
        raise ValueError(f"folder must be one folder name (not empty, '.', '..' or a path), got {folder!r}")
    archive, dest_dir = Path(archive), Path(dest_dir)
    final = dest_dir / folder
    tmp = dest_dir / f".{folder}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    root = tmp.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_zip_member(info, root)
                zf.extractall(root)
        elif tarfile.is_tarfile(archive):
            if not hasattr(tarfile, "data_filter"):
                raise RuntimeError(
                    "safe tar extraction needs Python 3.10.12+ / 3.11.4+ (tarfile filters)"
                )
            with tarfile.open(archive) as tf:
                try:
                    tf.extractall(root, filter="data")
                except tarfile.FilterError as err:
                    raise UnsafeArchiveError(f"{archive.name}: {err}") from err
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
        if not (root / folder).is_dir():
            raise FileNotFoundError(f"{archive.name} holds no top-level folder {folder!r}")
        if final.exists():
            shutil.rmtree(final)
        os.replace(root / folder, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
