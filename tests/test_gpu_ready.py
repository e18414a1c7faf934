"""GPU readiness that the CPU can check: no NumPy conversion in ``advtut/`` that a CUDA tensor
would break, and :func:`advtut.arrays.to_numpy`.

The scan (:func:`numpy_hazards`) reads every ``advtut/**/*.py`` with :mod:`ast` and reports

- a ``.numpy()`` call whose receiver has not been through ``.cpu()``: the receiver chain is
  followed through calls that keep a tensor's device (``detach``, ``contiguous``, ``double``,
  ``float``, ``flatten``, ``reshape``, ``permute``, ``clone``, ...) and subscripts, and must
  reach a ``.cpu()`` call, so ``x.cpu().numpy()``, ``x.detach().cpu().numpy()``,
  ``x.cpu().detach().numpy()`` and ``x.detach().cpu().double().numpy()`` pass and
  ``x.numpy()``, ``x.detach().numpy()`` do not; ``x.numpy(force=True)`` (which copies to the
  CPU itself) passes too;
- a call of ``np.asarray``, ``np.array`` or ``np.asanyarray`` (``numpy.`` too) whose first
  argument is not obviously NumPy input. Obviously NumPy input is: a literal (a number, a string,
  a list or tuple of literals, ``-1``), a ``.tolist()`` call, a ``.numpy()`` call (checked by the
  first rule), or a call of a NumPy function (``np.linspace(...)``) or of
  :func:`advtut.arrays.to_numpy`. Anything else (a name, an attribute, a comprehension, another
  call) may be a tensor and must either go through ``to_numpy`` or carry the marker comment
  ``# numpy input`` on one of the call's lines, which states that the value is never a tensor
  (a PIL image, a list of floats).

A tensor on ``cuda:0`` makes both ``.numpy()`` and ``np.asarray`` raise, so either rule's miss
is a crash on the GPU that no CPU run shows.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch

from advtut.arrays import to_numpy

PACKAGE = Path(__file__).resolve().parents[1] / "advtut"
MARKER = "# numpy input"
#: Tensor methods that keep the device: ``.numpy()`` may follow them if a ``.cpu()`` came first.
_KEEPS_DEVICE = {"detach", "contiguous", "double", "float", "half", "long", "int", "bool",
                 "flatten", "ravel", "reshape", "view", "permute", "transpose", "t", "squeeze",
                 "unsqueeze", "clone", "resolve_conj", "resolve_neg"}
_NP_NAMES = {"np", "numpy"}
_NP_CONVERTERS = {"asarray", "array", "asanyarray"}


def _through_cpu(node: ast.expr) -> bool:
    """Whether the receiver chain ``node`` reaches a ``.cpu()`` call (through device-keeping
    method calls and subscripts)."""
    while True:
        if isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "cpu":
                return True
            if node.func.attr not in _KEEPS_DEVICE:
                return False
            node = node.func.value
        else:
            return False


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_is_literal(e) for e in node.elts)
    return False


def _obviously_numpy(node: ast.expr) -> bool:
    if _is_literal(node):
        return True
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ("tolist", "numpy"):
            return True
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and f.value.id in _NP_NAMES):
            return True
        if isinstance(f, ast.Name) and f.id == "to_numpy":
            return True
    return False


def _marked_lines(source: str) -> set[int]:
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.string.startswith(MARKER):
            lines.add(tok.start[0])
    return lines


def numpy_hazards(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: what"`` for each ``.numpy()`` or ``np.asarray``/``np.array`` call in
    ``source`` that a CUDA tensor would break (the rules are in this module's docstring)."""
    tree = ast.parse(source, filename)
    marked = _marked_lines(source)
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        f = node.func
        if f.attr == "numpy" and not node.args:
            forced = any(k.arg == "force" and isinstance(k.value, ast.Constant) and k.value.value
                         for k in node.keywords)
            if not forced and not _through_cpu(f.value):
                out.append(f"{filename}:{node.lineno}: .numpy() without .cpu(): "
                           f"{ast.unparse(node)}")
        elif (f.attr in _NP_CONVERTERS and isinstance(f.value, ast.Name)
              and f.value.id in _NP_NAMES and node.args):
            if _obviously_numpy(node.args[0]):
                continue
            if marked & set(range(node.lineno, (node.end_lineno or node.lineno) + 1)):
                continue
            out.append(f"{filename}:{node.lineno}: np.{f.attr} of a possible tensor (use "
                       f"advtut.arrays.to_numpy, or mark it '{MARKER}'): {ast.unparse(node)}")
    return sorted(out)


def test_the_package_has_no_numpy_conversion_a_cuda_tensor_would_break():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    found = [h for f in files
             for h in numpy_hazards(f.read_text(), str(f.relative_to(PACKAGE.parent)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "y = x.numpy()",
    "y = x.detach().numpy()",
    "y = x.double().flatten().numpy()",
    "y = model.weight.numpy()",
    "y = x.to('cuda').numpy()",
    "a = np.asarray(t)",
    "a = np.array(t.double(), dtype=float)",
    "a = numpy.asarray(self.values)",
    "a = np.array([v for v in t])",
    "a = np.asarray(x if flag else y)",
])
def test_the_scan_reports_a_bad_snippet(snippet):
    source = f"import numpy as np\nimport numpy\n\ndef f(x, t, flag, y, model):\n    {snippet}\n"
    found = numpy_hazards(source, "bad.py")
    assert len(found) == 1 and found[0].startswith("bad.py:5:"), found


@pytest.mark.parametrize("snippet", [
    "y = x.cpu().numpy()",
    "y = x.detach().cpu().numpy()",
    "y = x.cpu().detach().numpy()",
    "y = x.detach().cpu().double().numpy()",
    "y = x.detach().cpu().contiguous().numpy()",
    "y = x.cpu()[0].numpy()",
    "y = x.numpy(force=True)",
    "a = np.asarray([1, -2.5, 3])",
    "a = np.array(t.tolist())",
    "a = np.asarray(np.linspace(0, 1, 5))",
    "a = np.asarray(t.detach().cpu().numpy())",
    "a = np.asarray(img, dtype=np.uint8)  # numpy input: a PIL image",
    "a = to_numpy(t)",
])
def test_the_scan_lets_a_safe_snippet_pass(snippet):
    source = f"import numpy as np\n\ndef f(x, t, img):\n    {snippet}\n"
    assert numpy_hazards(source) == []


def test_a_multi_line_call_may_carry_the_marker_on_any_line():
    source = "import numpy as np\na = np.array([s * s  # numpy input\n              for s in S])\n"
    assert numpy_hazards(source) == []
    assert len(numpy_hazards(source.replace("# numpy input", "# floats"))) == 1


def test_to_numpy_detaches_copies_and_keeps_the_values():
    t = torch.tensor([[1.5, -2.0], [0.25, 3.0]], requires_grad=True)
    a = to_numpy(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 2)
    assert np.array_equal(a, t.detach().numpy())
    assert to_numpy(t, dtype=float).dtype == np.float64
    assert np.array_equal(to_numpy(t, float), np.asarray(t.detach(), dtype=float))
    assert np.array_equal(to_numpy([torch.tensor(1.0), torch.tensor(2.0)]), [1.0, 2.0])
    assert np.array_equal(to_numpy([1, 2]), np.array([1, 2]))
    assert to_numpy(np.arange(3)).dtype == np.arange(3).dtype


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_to_numpy_and_the_minimal_moves_take_cuda_tensors():
    from advtut.linear import LinearSoftmax
    from advtut.minimal_move import exact_minimal_move_box, exact_minimal_move_linf_box

    t = torch.arange(6.0, device="cuda").reshape(2, 3)
    assert np.array_equal(to_numpy(t), np.arange(6.0).reshape(2, 3))
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    x = torch.rand(2, 4, generator=g, dtype=torch.float64)
    cpu = LinearSoftmax(w, b)
    gpu = LinearSoftmax(w.cuda(), b.cuda())
    for solve in (exact_minimal_move_box, exact_minimal_move_linf_box):
        a, c = solve(cpu, x, 2), solve(gpu, x.cuda(), 2)
        assert c.x_new.device.type == "cuda"
        assert torch.equal(a.x_new, c.x_new.cpu()) and torch.equal(a.feasible, c.feasible.cpu())
