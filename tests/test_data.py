"""The loaders on the offline copies in $ADVTUT_DATA (the counts are the datasets' published
ones), their errors, and the download path against a local server."""
import gzip
import hashlib

import pytest
import torch

from advtut import data
from advtut.data import (
    DataNotFoundError,
    load_fashion_mnist,
    load_flowers,
    load_iris,
    load_mnist,
    load_tiny_imagenet,
)

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_iris_petals():
    iris = load_iris()
    assert iris.x.shape == (150, 2) and iris.x.dtype == torch.float64
    assert iris.class_names == ("setosa", "versicolor", "virginica")
    assert iris.feature_names == ("petal length (cm)", "petal width (cm)")
    assert torch.bincount(iris.y).tolist() == [50, 50, 50]
    assert iris.x[:, 0].min() == 1.0 and iris.x[:, 0].max() == 6.9  # Fisher's petal lengths


def test_mnist_offline(data_root):
    test = load_mnist("test", root=data_root, download=False)
    assert test.x.shape == (10000, 1, 28, 28) and test.x.dtype == torch.float32
    assert test.x.min() == 0.0 and test.x.max() == 1.0
    assert torch.bincount(test.y).tolist() == MNIST_TEST_COUNTS
    assert test.class_names[0].startswith("0")


def test_fashion_mnist_offline(data_root):
    train = load_fashion_mnist("train", root=data_root, download=False)
    assert train.x.shape == (60000, 1, 28, 28)
    assert torch.bincount(train.y).tolist() == [6000] * 10
    assert train.class_names[-1] == "Ankle boot"


def test_data_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVTUT_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    monkeypatch.delenv("ADVTUT_DATA")
    assert data.data_root().name == "advtut"


def test_flowers_split_is_seeded_stratified_and_disjoint(data_root):
    kw = dict(image_size=32, root=data_root, download=False)
    val = load_flowers("val", **kw)
    train = load_flowers("train", **kw)
    assert len(val) + len(train) == 3670
    assert val.x.shape[1:] == (3, 32, 32) and 0.0 <= val.x.min() and val.x.max() <= 1.0
    counts = [633, 898, 641, 699, 799]
    assert torch.bincount(val.y).tolist() == [round(0.2 * n) for n in counts]
    again = load_flowers("val", **kw)
    assert torch.equal(again.x, val.x)
    other_seed = load_flowers("val", seed=1, **kw)
    assert not torch.equal(other_seed.x, val.x)
    assert not set(val.files) & set(train.files)  # no photo in both splits
    assert len(set(val.files) | set(train.files)) == 3670


def test_tiny_imagenet_offline_with_greyscale_converted(data_root):
    val = load_tiny_imagenet("val", root=data_root, download=False)
    assert val.x.shape == (2000, 3, 64, 64)
    assert torch.bincount(val.y, minlength=200).tolist() == [10] * 200
    assert val.class_names[0] == "Egyptian cat"
    train = load_tiny_imagenet("train", max_per_class=3, root=data_root, download=False)
    assert train.x.shape == (600, 3, 64, 64)
    assert torch.equal(train.y[:3], torch.zeros(3, dtype=torch.int64))


def test_missing_data_names_dataset_folder_variable_and_address(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVTUT_DATA", str(tmp_path))
    for loader, name, url in [(load_mnist, "MNIST", "ossci-datasets"),
                              (load_flowers, "flower photos", "flower_photos.tgz"),
                              (load_tiny_imagenet, "Tiny ImageNet", "tiny-imagenet-200.zip")]:
        with pytest.raises(DataNotFoundError) as err:
            loader(download=False)
        msg = str(err.value)
        assert name in msg and str(tmp_path) in msg and "ADVTUT_DATA" in msg and url in msg


def test_truncated_mnist_file_does_not_pass(tmp_path, data_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes()[: -1 if "t10k-labels" in f.name else None])
    with pytest.raises(DataNotFoundError, match="MNIST"):
        load_mnist("test", root=tmp_path, download=False)


def test_mnist_downloads_verifies_and_unpacks(http_files, tmp_path, data_root, monkeypatch):
    state, base = http_files
    md5s = {}
    for f in (data_root / "MNIST" / "raw").iterdir():
        gz = gzip.compress(f.read_bytes(), compresslevel=1, mtime=0)
        state.files[f"/mnist/{f.name}.gz"] = gz
        md5s[f.name + ".gz"] = hashlib.md5(gz).hexdigest()
    monkeypatch.setattr(data, "MNIST_MIRRORS", (base + "/dead/", base + "/mnist/"))
    monkeypatch.setattr(data, "MNIST_MD5", md5s)
    test = load_mnist("test", root=tmp_path)
    assert test.x.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.y).tolist() == MNIST_TEST_COUNTS
    assert not list((tmp_path / "MNIST" / "raw").glob("*.gz")) and not list(tmp_path.rglob("*.part"))


def test_download_failure_becomes_a_clear_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_MIRRORS", ("http://127.0.0.1:9/",))
    with pytest.raises(DataNotFoundError, match="failed") as err:
        load_mnist("test", root=tmp_path)
    assert "root= argument" in str(err.value) and "pass download=True" not in str(err.value)


@pytest.mark.parametrize("call, match", [
    (lambda: load_mnist("validation", download=False), "split must be one of"),
    (lambda: load_flowers("test", download=False), "split must be one of"),
    (lambda: load_flowers(val_fraction=1.5, download=False), "val_fraction"),
    (lambda: load_iris(features=("petal colour",)), "features must be"),
    (lambda: load_tiny_imagenet(max_per_class=0, download=False), "max_per_class"),
    (lambda: load_flowers(max_per_class=-2, download=False), "max_per_class"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_image_folder_reads_the_imagenet_layout_as_uint8(tmp_path):
    from PIL import Image

    root = tmp_path / "imagenet"
    colours = {"n01440764": (200, 10, 10), "n02102040": (10, 200, 10)}
    for wnid, rgb in colours.items():
        (root / "val" / wnid).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (80 + 10 * i, 60), rgb).save(root / "val" / wnid / f"{i}.JPEG", quality=95)
    (root / "val" / "n02102040" / "notes.txt").write_text("not an image")
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn02102040 English springer\n")
    ds = data.load_image_folder(root, "val", image_size=16, max_per_class=2)
    assert ds.x.dtype == torch.uint8 and ds.x.shape == (4, 3, 16, 16)
    assert ds.y.tolist() == [0, 0, 1, 1] and ds.class_names == ("tench", "English springer")
    assert abs(int(ds.x[0, 0].float().mean()) - 200) <= 3 and int(ds.x[2, 1].float().mean()) > 190
    with pytest.raises(DataNotFoundError, match="ImageFolder layout"):
        data.load_image_folder(root, "train")
