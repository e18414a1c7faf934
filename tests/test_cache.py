"""Cache files: named by their parts, the settings and the code's fingerprint; atomic writes;
a stale file (other code or other settings) is never loaded."""
import json

import pytest
import torch

import advtut.book.cache
from advtut.book.cache import cache_path, code_fingerprint, load_or_compute, module_closure


def square(v):
    return v * v


def cube(v):
    return v * v * v


def test_the_name_keeps_the_parts_readable(tmp_path):
    path = cache_path(tmp_path, "quick", 0, "FC10(1e-4)'")
    assert path.parent == tmp_path and path.suffix == ".pt"
    assert path.name.startswith("quick-0-FC10_1e-4__-") and len(path.stem) == len("quick-0-FC10_1e-4__-") + 12
    assert cache_path(None, "x") is None
    with pytest.raises(ValueError, match="at least one part"):
        cache_path(tmp_path)


def test_settings_and_code_change_the_name(tmp_path):
    base = cache_path(tmp_path, "m", settings={"max_iter": 150, "n": 10}, code=(square,))
    assert base == cache_path(tmp_path, "m", settings={"n": 10, "max_iter": 150}, code=(square,))
    assert base != cache_path(tmp_path, "m", settings={"max_iter": 151, "n": 10}, code=(square,))
    assert base != cache_path(tmp_path, "m", settings={"max_iter": 150}, code=(square,))
    assert base != cache_path(tmp_path, "m", settings={"max_iter": 150, "n": 10}, code=(cube,))
    assert base != cache_path(tmp_path, "m", settings={"max_iter": 150, "n": 10},
                              code=(square, cube))
    assert base != cache_path(tmp_path, "other", settings={"max_iter": 150, "n": 10},
                              code=(square,))


def test_a_modules_fingerprint_is_its_files_bytes(tmp_path, monkeypatch):
    mod = tmp_path / "mod_for_cache_test.py"
    mod.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    m = importlib.import_module("mod_for_cache_test")
    first = code_fingerprint([m])
    assert first == code_fingerprint([m])
    mod.write_text("X = 2\n")  # the code changed on disk: a resumed run must see it
    assert code_fingerprint([m]) != first
    assert code_fingerprint([advtut.book.cache]) != code_fingerprint([advtut.book.cache, m])
    with pytest.raises(ValueError, match="cannot read the source"):
        code_fingerprint([len])


def test_load_or_compute_writes_once_and_loads_after(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3.0), "name": "FC10", "n": 3, "errs": (0.1, 0.2)}

    path = cache_path(tmp_path / "sub", "a", settings={"k": 1}, code=(square,))
    first = load_or_compute(path, compute)
    again = load_or_compute(path, compute)
    assert len(calls) == 1 and path.is_file() and not list(path.parent.glob("*.part"))
    assert torch.equal(first["w"], again["w"]) and again["name"] == "FC10"
    assert again["errs"] == (0.1, 0.2)
    assert load_or_compute(None, compute)["n"] == 3 and len(calls) == 2


def test_a_stale_file_is_not_loaded(tmp_path):
    old = cache_path(tmp_path, "model", settings={"max_iter": 150}, code=(square,))
    load_or_compute(old, lambda: {"value": torch.tensor(1.0)})
    for new in (cache_path(tmp_path, "model", settings={"max_iter": 150}, code=(cube,)),
                cache_path(tmp_path, "model", settings={"max_iter": 300}, code=(square,))):
        assert load_or_compute(new, lambda: {"value": torch.tensor(2.0)})["value"] == 2.0
    assert load_or_compute(old, lambda: {"value": torch.tensor(3.0)})["value"] == 1.0


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"f": json.dumps}, path)  # a function: not plain data
    with pytest.raises(Exception, match="[Ww]eights"):
        load_or_compute(path, lambda: None)


def test_the_key_follows_imports_transitively(tmp_path, monkeypatch):
    """A function's key covers every module it imports, and what those import: editing a module
    two imports away (here inside a function body) gives another key."""
    pkg = tmp_path / "fpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "top.py").write_text("from fpkg.middle import helper\n\ndef produce():\n"
                                "    return helper()\n")
    (pkg / "middle.py").write_text("def helper():\n    from fpkg import bottom\n"
                                   "    return bottom.VALUE\n")
    (pkg / "bottom.py").write_text("VALUE = 1\n")
    (pkg / "unrelated.py").write_text("X = 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    top = importlib.import_module("fpkg.top")
    closure = module_closure([top.produce], package="fpkg")
    assert list(closure) == ["fpkg", "fpkg.bottom", "fpkg.middle", "fpkg.top"]
    before = code_fingerprint([top.produce], package="fpkg")
    (pkg / "unrelated.py").write_text("X = 1\n")
    assert code_fingerprint([top.produce], package="fpkg") == before
    (pkg / "bottom.py").write_text("VALUE = 2\n")
    assert code_fingerprint([top.produce], package="fpkg") != before


def test_the_shared_networks_key_covers_what_training_imports():
    """The zoo's CNN is keyed by advtut.evaluation too (training imports it for model_mode):
    editing it must retrain the cached network."""
    from advtut.chapters.zoo import mnist_cnn

    closure = module_closure([mnist_cnn])
    assert {"advtut.chapters.zoo", "advtut.training", "advtut.evaluation",
            "advtut.models"} <= set(closure)
