import hashlib
import io
import tarfile
import time
import zipfile

import pytest

from advtut.download import DownloadError, UnsafeArchiveError, download, extract, file_digest

BODY = bytes(range(256)) * 4000  # 1,024,000 bytes
SHA = hashlib.sha256(BODY).hexdigest()


def test_download_verifies_and_renames(http_files, tmp_path):
    state, base = http_files
    state.files["/a.bin"] = BODY
    out = download(base + "/a.bin", tmp_path / "a.bin", sha256=SHA, size=len(BODY), progress=False)
    assert out.read_bytes() == BODY
    assert not (tmp_path / "a.bin.part").exists()
    assert file_digest(out) == SHA


def test_download_resumes_a_partial_file_with_range(http_files, tmp_path):
    state, base = http_files
    state.files["/a.bin"] = BODY
    (tmp_path / "a.bin.part").write_bytes(BODY[:300_000])
    download(base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert state.requests == [("/a.bin", "bytes=300000-")]


def test_download_retries_after_a_dropped_connection_and_resumes(http_files, tmp_path):
    state, base = http_files
    state.files["/a.bin"] = BODY
    state.cut_after["/a.bin"] = 200_000
    download(base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False, retries=3)
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert len(state.requests) == 2 and state.requests[1][1] is not None  # second try resumed


def test_checksum_mismatch_leaves_no_file(http_files, tmp_path):
    state, base = http_files
    state.files["/a.bin"] = BODY
    with pytest.raises(DownloadError, match="sha256"):
        download(base + "/a.bin", tmp_path / "a.bin", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_falls_back_to_the_next_mirror(http_files, tmp_path):
    state, base = http_files
    state.files["/mirror2/a.bin"] = BODY
    download([base + "/mirror1/a.bin", base + "/mirror2/a.bin"], tmp_path / "a.bin", sha256=SHA,
             progress=False)
    assert [p for p, _ in state.requests] == ["/mirror1/a.bin", "/mirror2/a.bin"]


def test_times_out_instead_of_hanging(http_files, tmp_path):
    state, base = http_files
    state.stall.add("/slow.bin")
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match="slow.bin"):
        download(base + "/slow.bin", tmp_path / "slow.bin", sha256=SHA, timeout=0.3, retries=2,
                 progress=False)
    assert time.perf_counter() - t0 < 5


def test_download_requires_a_checksum(tmp_path):
    with pytest.raises(ValueError, match="checksum"):
        download("http://127.0.0.1:9/x", tmp_path / "x")


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("make, suffix", [(_tar, ".tgz"), (_zip, ".zip")])
def test_extract_moves_the_finished_folder_into_place(tmp_path, make, suffix):
    arc = tmp_path / ("d" + suffix)
    arc.write_bytes(make({"data/a/x.txt": b"x", "data/y.txt": b"y"}))
    out = extract(arc, tmp_path / "root", folder="data")
    assert (out / "a" / "x.txt").read_bytes() == b"x"
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["data"]  # no temp folder left


@pytest.mark.parametrize("make, suffix", [(_tar, ".tgz"), (_zip, ".zip")])
def test_extract_rejects_members_outside_the_root(tmp_path, make, suffix):
    arc = tmp_path / ("evil" + suffix)
    arc.write_bytes(make({"data/ok.txt": b"ok", "../escaped.txt": b"no"}))
    with pytest.raises(UnsafeArchiveError):
        extract(arc, tmp_path / "root", folder="data")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "root" / "data").exists()


def test_extract_rejects_tar_symlinks_out_of_the_root(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        link = tarfile.TarInfo("data/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    (tmp_path / "l.tgz").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError):
        extract(tmp_path / "l.tgz", tmp_path / "root", folder="data")


def test_extract_needs_the_named_folder(tmp_path):
    (tmp_path / "d.zip").write_bytes(_zip({"other/x.txt": b"x"}))
    with pytest.raises(FileNotFoundError, match="data"):
        extract(tmp_path / "d.zip", tmp_path / "root", folder="data")


def test_a_stale_partial_file_is_discarded_and_the_download_restarts(http_files, tmp_path):
    state, base = http_files
    state.files["/a.bin"] = BODY
    (tmp_path / "a.bin.part").write_bytes(b"garbage from another version" * 10)
    download(base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert state.requests[0][1] is not None and state.requests[-1] == ("/a.bin", None)


@pytest.mark.parametrize("folder", ["", ".", "..", "a/b"])
def test_extract_needs_one_folder_name(tmp_path, folder):
    (tmp_path / "d.zip").write_bytes(_zip({"data/x.txt": b"x"}))
    with pytest.raises(ValueError, match="one folder name"):
        extract(tmp_path / "d.zip", tmp_path / "root", folder=folder)
