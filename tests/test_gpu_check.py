"""scripts/gpu_check.py on the CPU: its plan (--dry-run), its data map and the scripts it writes.
Running the chapters on CUDA is the script's own job, on a machine with a GPU."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args, data):
    env = {"PATH": "/usr/bin:/bin", "ADVTUT_DATA": str(data), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_every_chapter_has_its_data_folders(gpu_check):
    ids = [c for c, _ in gpu_check.chapter_notebooks()]
    assert ids and set(ids) == set(gpu_check.CHAPTER_DATA)
    with pytest.raises(ValueError, match="99_new.*CHAPTER_DATA"):
        gpu_check.missing_data("99_new", ROOT)


def test_dry_run_lists_the_chapters_and_skips_those_without_data(tmp_path, gpu_check):
    (tmp_path / "MNIST").mkdir()
    res = _run("--dry-run", "--out", str(tmp_path / "out"), data=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any("pytest -q -m cuda" in ln for ln in lines)
    for chapter, needs in gpu_check.CHAPTER_DATA.items():
        (line,) = [ln for ln in lines if f"] {chapter}:" in ln]
        missing = [d for d in needs if d != "MNIST"]
        if missing:
            assert "would skip" in line and ", ".join(missing) in line, line
        else:
            assert "would run" in line and "device=cuda" in line, line
    assert not (tmp_path / "out").exists()      # a dry run writes nothing


def test_a_written_chapter_compiles_and_runs_on_cuda(tmp_path, gpu_check):
    by_id = dict(gpu_check.chapter_notebooks())
    for chapter in ("01_iris", "05_spectral"):
        path = gpu_check.write_chapter(chapter, by_id[chapter], tmp_path)
        source = path.read_text()
        compile(source, str(path), "exec")
        assert "device = 'cuda'" in source and "profile = 'quick'" in source
        assert f"results_path = {str(tmp_path / (chapter + '.json'))!r}" in source
        has_cache = f"cache_dir = {str(tmp_path / 'cache')!r}" in source
        assert has_cache == (chapter == "05_spectral")
        assert "import nbformat" not in source and "papermill" not in source


def test_the_chapter_scripts_need_no_jupyter_package(tmp_path, gpu_check, monkeypatch):
    """The GPU machine has no nbformat: writing a chapter must not import it."""
    monkeypatch.setitem(sys.modules, "nbformat", None)   # import nbformat -> ImportError
    by_id = dict(gpu_check.chapter_notebooks())
    gpu_check.write_chapter("01_iris", by_id["01_iris"], tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_without_a_gpu_it_says_so_and_exits_2(tmp_path):
    res = _run("--no-tests", "--out", str(tmp_path), data=tmp_path)
    assert res.returncode == 2 and "no CUDA GPU" in res.stderr
