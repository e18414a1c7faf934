"""The determinism check (advtut.book.determinism): what a second run with the same seed would
show, found in one run. Each cause is shown caught on a constructed case and left alone on its
seeded counterpart; a chapter with an unseeded draw injected fails the results gate."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from advtut.book import determinism as det
from advtut.book.cache import load_or_compute
from advtut.book.execute import execute_chapter
from advtut.book.results import check_results, load_results
from advtut.book.toc import chapters

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "advtut"


@pytest.fixture
def audit():
    det.install()
    det.reset()
    yield det
    det.uninstall()


def _run_as_package_code(source: str) -> None:
    """Run ``source`` as if it were a line of advtut (the audit records only our own code)."""
    exec(compile(source, str(PACKAGE / "_injected.py"), "exec"), {"np": np, "torch": torch,
                                                                   "random": __import__("random")})


@pytest.mark.parametrize("call", ["np.random.default_rng()", "np.random.seed()", "random.seed()",
                                  "random.seed(a=None)", "torch.seed()", "torch.random.seed()"])
def test_an_unseeded_draw_in_our_code_is_recorded(audit, call):
    import random

    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    _run_as_package_code(call)
    random.setstate(states[0]), np.random.set_state(states[1]), torch.random.set_rng_state(states[2])
    (found,) = audit.findings()
    assert "unseeded draw" in found and "_injected.py:1" in found


def test_seeded_draws_and_other_code_are_not_recorded(audit):
    import random

    states = random.getstate(), np.random.get_state()
    _run_as_package_code("np.random.default_rng(3)\nrandom.seed(1)\nrandom.seed(a=5)\n"
                         "np.random.seed(2)")
    random.setstate(states[0]), np.random.set_state(states[1])
    np.random.default_rng()  # not advtut's code: third-party and test code are not ours to fix
    assert audit.findings() == []


def test_a_cache_hit_and_a_miss_leave_the_same_random_state(tmp_path):
    """A cached computation that draws from every global generator: computing it (a miss) and
    loading it (a hit) leave the generators in one state, the state before the call; the value
    is what the computation drew from that state."""
    import random

    def draw():
        return torch.tensor([random.random(), float(np.random.rand()), float(torch.rand(()))])

    before = det.rng_digest()
    computed = load_or_compute(tmp_path / "drew.pt", draw)
    after_miss = det.rng_digest()
    loaded = load_or_compute(tmp_path / "drew.pt", draw)
    assert before == after_miss == det.rng_digest()
    assert torch.equal(computed, loaded) and torch.equal(computed, draw())  # drawn from `before`


def test_the_digest_sees_every_global_generator():
    import random

    base = det.rng_digest()
    for draw in (lambda: random.random(), lambda: np.random.rand(), lambda: torch.rand(1)):
        state = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
        draw()
        assert det.rng_digest() != base
        random.setstate(state[0]), np.random.set_state(state[1]), torch.random.set_rng_state(state[2])
        assert det.rng_digest() == base


@pytest.mark.parametrize("source, found", [
    ("torch.manual_seed(int(time.time()))", "seeded from time.time"),
    ("g = torch.Generator().manual_seed(os.getpid())", "seeded from os.getpid"),
    ("rng = np.random.default_rng()", "without a seed"),
    ("r = random.Random()", "without a seed"),
    ("g.seed()", "without a seed"),
    ("torch.manual_seed(seed + 1)", None),
    ("rng = np.random.default_rng(seed)", None),
    ("g = torch.Generator().manual_seed(0)", None),
    ("t0 = time.perf_counter()", None),
])
def test_seeds_from_the_clock_or_the_system_are_found_in_the_source(source, found):
    out = det.static_findings(source, where="x.py")
    assert (out == []) if found is None else (len(out) == 1 and found in out[0]), out


def test_the_package_and_the_notebooks_seed_from_their_seed_only():
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")]
    assert det.scan(paths) == []


def _inject(nb_path: Path, code: str) -> None:
    """Add a code cell right after the cell that calls start_chapter."""
    nb = json.loads(nb_path.read_text())
    at = next(i for i, c in enumerate(nb["cells"])
              if c["cell_type"] == "code" and "start_chapter(" in "".join(c["source"]))
    nb["cells"].insert(at + 1, {"cell_type": "code", "metadata": {}, "execution_count": None,
                                "outputs": [], "source": code})
    nb_path.write_text(json.dumps(nb, indent=1))


def test_a_chapter_with_an_unseeded_draw_fails_its_gate(tmp_path, data_root):
    """Chapter 1 with one injected cell that draws from a fresh generator: the numbers of two
    runs could differ, and the results gate says so; the source scan finds a clock seed."""
    (ch,) = [c for c in chapters(ROOT) if c.id == "01_iris"]
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                       "- file: notebooks/01_iris\n")
    (tmp_path / "notebooks").mkdir()
    nb = tmp_path / "notebooks" / ch.path.name
    shutil.copy(ch.path, nb)
    _inject(nb, "import numpy as np\nnoise = np.random.default_rng().random()")
    (copy,) = [c for c in chapters(tmp_path) if c.id == "01_iris"]
    _, results = execute_chapter(copy, profile="quick", seed=0, root=tmp_path,
                                 build_dir=tmp_path / "_build")
    failures = check_results(load_results(results))
    assert len(failures) == 1 and "unseeded draw: numpy.random.default_rng()" in failures[0]
    _inject(nb, "import time\nimport torch\ntorch.manual_seed(time.time_ns() % 2**31)")
    found = det.scan([nb])  # both injected cells, in the notebook's order
    assert len(found) == 2, found
    assert any("time.time_ns" in f for f in found) and any("without a seed" in f for f in found)
