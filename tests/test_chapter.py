import os
import random

import numpy as np
import pytest
import torch

from advtut.book.chapter import resolve_device, seed_everything, start_chapter
from advtut.book.profiles import PROFILES, settings


def test_start_chapter_seeds_and_reads_the_profile():
    run = start_chapter("01_iris", profile="quick", seed=7, device="cpu")
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    start_chapter("01_iris", profile="quick", seed=7, device="cpu")
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    assert run.settings == settings("01_iris", "quick") and run.device == torch.device("cpu")
    with pytest.raises(TypeError):
        run.settings["grid_points"] = 1  # read-only
    # CUDA runs repeat too: deterministic cuDNN and algorithms, a fixed cuBLAS workspace
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")
    # and in full float32 precision: no TF32 in matrix products or cuDNN convolutions
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"


def test_seed_everything_turns_tf32_off_even_when_it_was_on():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision())
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        seed_everything(0)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.set_float32_matmul_precision(before[2])


def test_summary_is_a_table_of_the_settings():
    run = start_chapter("01_iris", profile="quick", seed=3, device="cpu")
    df = run.summary().data
    assert list(df.columns) == ["setting", "value"]
    rows = dict(zip(df["setting"], df["value"]))
    assert rows["profile"] == "quick" and rows["seed"] == "3" and rows["device"] == "cpu"
    assert rows["c_values"] == ", ".join(map(str, settings("01_iris", "quick")["c_values"]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(profile="fast", seed=0), r"profile must be one of \['full', 'quick'\].*'fast'"),
    (dict(profile="quick", seed=0, device="gpu"), "device must be one of"),
    (dict(profile="quick", seed=-1), "seed must be a non-negative integer"),
    (dict(profile="quick", seed=1.5), "seed must be a non-negative integer"),
    (dict(profile="quick", seed=0, results_path=3), "results_path"),
])
def test_bad_parameters_stop_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        start_chapter("01_iris", **kwargs)


def test_unknown_chapter():
    with pytest.raises(ValueError, match="unknown chapter"):
        settings("99_nothing", "quick")


def test_every_chapter_has_both_profiles():
    for chapter, table in PROFILES.items():
        assert set(table) == {"quick", "full"}, chapter


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no usable CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
