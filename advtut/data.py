"""The book's datasets as tensors: Iris, MNIST, Fashion-MNIST, flower photos, Tiny ImageNet.

Every loader returns a :class:`Dataset`: images are float32 ``(N, C, H, W)`` in [0, 1], labels
int64 ``(N,)`` in ``[0, K)``, and the ``K`` class names. Files live under one data root:

- the ``root=`` argument, else the ``ADVTUT_DATA`` environment variable, else a per-user cache
  folder (``$XDG_CACHE_HOME/advtut`` or ``~/.cache/advtut``);
- each dataset keeps its public folder layout there (``MNIST/raw/``, ``FashionMNIST/raw/``,
  ``flower_photos/``, ``tiny-imagenet-200/``), so an offline copy is read as it is.

When a dataset is missing and ``download=True`` (the default), it is downloaded with a progress
bar, checked against its published checksum and unpacked safely (:mod:`advtut.download`). Without
network, or with ``download=False``, a :class:`DataNotFoundError` names the dataset, the folder
searched, the environment variable and the download address.

Example::

    train = load_mnist("train")             # train.x: (60000, 1, 28, 28) in [0, 1]
    iris = load_iris()                      # iris.x: (150, 2) petal length, width in cm
"""
from __future__ import annotations

import gzip
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm.std import tqdm

# imported as download_file: the loaders' keyword argument is called `download`
from advtut.download import DownloadError, extract
from advtut.download import download as download_file

__all__ = [
    "DataNotFoundError", "Dataset", "data_root", "load_iris", "load_mnist",
    "load_fashion_mnist", "load_flowers", "load_tiny_imagenet", "load_image_folder",
    "FLOWER_CLASSES",
]

ENV_VAR = "ADVTUT_DATA"


class DataNotFoundError(FileNotFoundError):
    """A dataset is not in the data root and could not be downloaded."""


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset.

    ``x``: float32 ``(N, C, H, W)`` in [0, 1] for images; float64 ``(N, F)`` in the features'
    own units for tabular data (Iris: cm). ``y``: int64 ``(N,)`` in ``[0, K)``.
    ``class_names``: the ``K`` names, indexed by label. ``feature_names``: tabular data only.
    ``files``: for datasets read from image files, each example's path relative to the data root.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] | None = None
    files: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, split={self.split!r}, x={tuple(self.x.shape)}, "
                f"classes={len(self.class_names)})")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$ADVTUT_DATA``, else a per-user cache folder."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "advtut"


def _missing(dataset: str, folder: Path, url: str, root: Path, why: str = "",
             explicit_root: bool = False) -> DataNotFoundError:
    if explicit_root:
        where = f"the root= argument; without it, ${ENV_VAR} or the default"
    elif os.environ.get(ENV_VAR):
        where = f"from {ENV_VAR}={os.environ[ENV_VAR]}"
    else:
        where = f"the default; set {ENV_VAR} to use another folder"
    hint = (f"  the download from {url} failed: {why}" if why
            else f"  online, it downloads from {url} (pass download=True)")
    return DataNotFoundError(
        f"{dataset} was not found in {folder}.\n"
        f"  data root: {root} ({where})\n{hint}\n"
        f"  offline, copy it into the data root in its public layout"
    )


def _check_max_per_class(max_per_class) -> None:
    if max_per_class is not None and (isinstance(max_per_class, bool) or int(max_per_class) < 1):
        raise ValueError(f"max_per_class must be a positive number of images or None, got {max_per_class!r}")


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


# ----------------------------------------------------------------------------- Iris
IRIS_FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")


def load_iris(*, features: tuple[str, ...] = ("petal length (cm)", "petal width (cm)")) -> Dataset:
    """Fisher's 150 Iris flowers from scikit-learn (bundled, no download).

    Returns ``x``: float64 ``(150, len(features))`` in cm, ``y`` in {0, 1, 2} for
    setosa, versicolor, virginica. There is no split: ``split="all"``.
    """
    from sklearn.datasets import load_iris as _sk_load_iris

    unknown = [f for f in features if f not in IRIS_FEATURES]
    if unknown or not features:
        raise ValueError(f"features must be a non-empty subset of {IRIS_FEATURES}, got {features}")
    bunch = _sk_load_iris()
    cols = [IRIS_FEATURES.index(f) for f in features]
    return Dataset(
        name="iris", split="all",
        x=torch.as_tensor(bunch.data[:, cols], dtype=torch.float64),
        y=torch.as_tensor(bunch.target, dtype=torch.int64),
        class_names=tuple(str(n) for n in bunch.target_names),
        feature_names=tuple(features),
    )


# ----------------------------------------------------------------------------- MNIST-like
# Uncompressed sizes of the four IDX files (identical for MNIST and Fashion-MNIST): a truncated
# file fails this check.
_IDX_SIZES = {
    "train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008,
}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {  # of the .gz files, as torchvision checks them
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def _idx_complete(raw: Path) -> bool:
    return all((raw / n).is_file() and (raw / n).stat().st_size == s for n, s in _IDX_SIZES.items())


def _fetch_idx(raw: Path, mirrors: tuple[str, ...], md5s: dict[str, str]) -> None:
    """Download the four .gz files, verify them, and unpack each atomically into ``raw``."""
    raw.mkdir(parents=True, exist_ok=True)
    for gz_name, md5 in md5s.items():
        name = gz_name[:-3]
        if (raw / name).is_file() and (raw / name).stat().st_size == _IDX_SIZES[name]:
            continue
        gz = download_file([m + gz_name for m in mirrors], raw / gz_name, md5=md5)
        tmp = raw / (name + ".part")
        with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if tmp.stat().st_size != _IDX_SIZES[name]:
            tmp.unlink()
            raise DownloadError(f"{gz_name} unpacked to the wrong size")
        os.replace(tmp, raw / name)
        gz.unlink()


def _load_idx_dataset(cls_name: str, split: str, root, download: bool, mirrors, md5s) -> Dataset:
    import torchvision

    _check_split(split, ("train", "test"))
    base = data_root(root)
    raw = base / cls_name / "raw"
    if not _idx_complete(raw):
        if not download:
            raise _missing(cls_name, raw, mirrors[0], base, explicit_root=root is not None)
        try:
            _fetch_idx(raw, mirrors, md5s)
        except DownloadError as err:
            raise _missing(cls_name, raw, mirrors[0], base, why=str(err),
                           explicit_root=root is not None) from None
    tv = getattr(torchvision.datasets, cls_name)(str(base), train=split == "train", download=False)
    x = tv.data.unsqueeze(1).to(torch.float32).div_(255.0)  # (N, 1, 28, 28) in [0, 1]
    return Dataset(name=cls_name, split=split, x=x, y=tv.targets.to(torch.int64),
                   class_names=tuple(tv.classes))


def load_mnist(split: str = "train", *, root=None, download: bool = True) -> Dataset:
    """MNIST digits through torchvision: ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1].

    ``split``: ``"train"`` (60,000) or ``"test"`` (10,000). Reads ``<root>/MNIST/raw/``.
    """
    return _load_idx_dataset("MNIST", split, root, download, MNIST_MIRRORS, MNIST_MD5)


def load_fashion_mnist(split: str = "train", *, root=None, download: bool = True) -> Dataset:
    """Fashion-MNIST through torchvision: ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1].

    ``split``: ``"train"`` (60,000) or ``"test"`` (10,000). Reads ``<root>/FashionMNIST/raw/``.
    """
    return _load_idx_dataset("FashionMNIST", split, root, download, FASHION_MIRRORS, FASHION_MD5)


# ----------------------------------------------------------------------------- image folders
def _decode(paths: list[Path], size: int | None, desc: str, *, as_uint8: bool = False) -> torch.Tensor:
    """Decode images to float32 (N, 3, size, size) in [0, 1] (centre crop after resizing), or to
    uint8 0-255 with ``as_uint8`` (a quarter of the memory: ImageNet-sized sets)."""

    def one(path: Path) -> np.ndarray:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)  # numpy input: a PIL image

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        arrays = list(tqdm(pool.map(one, paths), total=len(paths), desc=desc, unit="img",
                           mininterval=2.0, disable=len(paths) < 2000))
    if not arrays:
        return torch.empty(0, 3, size or 0, size or 0, dtype=torch.uint8 if as_uint8 else torch.float32)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"{desc}: images have different sizes {sorted(shapes)[:3]}; pass a size")
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return x if as_uint8 else x.to(torch.float32).div_(255.0)


def _ensure_folder(name: str, base: Path, folder: str, complete, urls, archive: str,
                   download: bool, explicit_root: bool, **checksum) -> Path:
    path = base / folder
    if complete(path):
        return path
    if not download:
        raise _missing(name, path, urls[0], base, explicit_root=explicit_root)
    try:
        arc = download_file(urls, base / archive, **checksum)
        extract(arc, base, folder=folder)
        arc.unlink()
    except DownloadError as err:
        raise _missing(name, path, urls[0], base, why=str(err), explicit_root=explicit_root) from None
    if not complete(path):
        raise _missing(name, path, urls[0], base, explicit_root=explicit_root,
                       why=f"{archive} did not hold a complete {folder}/")
    return path


FLOWER_URLS = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    "http://download.tensorflow.org/example_images/flower_photos.tgz",
)
FLOWER_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"  # TFDS's
FLOWER_SIZE = 228_813_984
#: The flower photos' five classes, in label order (label ``i`` is ``FLOWER_CLASSES[i]``).
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


def _flowers_complete(path: Path) -> bool:
    return all(any((path / c).glob("*.jpg")) for c in FLOWER_CLASSES)


def load_flowers(split: str = "train", *, image_size: int = 128, val_fraction: float = 0.2,
                 seed: int = 0, max_per_class: int | None = None, root=None,
                 download: bool = True) -> Dataset:
    """The TensorFlow flower photos (5 classes, 3,670 photos) with a seeded split.

    ``x``: float32 ``(N, 3, image_size, image_size)`` in [0, 1]: each photo resized so its
    shorter side is ``image_size`` px, then centre-cropped. The archive has no split: within each
    class a permutation seeded by ``seed`` puts ``round(val_fraction * n)`` photos in ``"val"`` and
    the rest in ``"train"`` (``"all"``: every photo). ``max_per_class`` keeps the first photos of
    each class in that order (for quick runs).
    """
    _check_split(split, ("train", "val", "all"))
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    _check_max_per_class(max_per_class)
    base = data_root(root)
    folder = _ensure_folder("flower photos", base, "flower_photos", _flowers_complete,
                            FLOWER_URLS, "flower_photos.tgz", download, root is not None,
                            sha256=FLOWER_SHA256, size=FLOWER_SIZE)
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for label, cls in enumerate(FLOWER_CLASSES):
        files = sorted((folder / cls).glob("*.jpg"))
        order = rng.permutation(len(files))
        n_val = round(val_fraction * len(files))
        chosen = {"val": order[:n_val], "train": order[n_val:], "all": np.sort(order)}[split]
        if max_per_class is not None:
            chosen = chosen[:max_per_class]
        paths += [files[i] for i in chosen]
        labels += [label] * len(chosen)
    x = _decode(paths, image_size, f"flowers/{split}")
    return Dataset(name="flowers", split=split, x=x, y=torch.tensor(labels, dtype=torch.int64),
                   class_names=FLOWER_CLASSES, files=tuple(str(p.relative_to(base)) for p in paths))


TINY_URLS = ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",)
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def _tiny_complete(path: Path) -> bool:
    return ((path / "wnids.txt").is_file() and (path / "words.txt").is_file()
            and (path / "val" / "val_annotations.txt").is_file() and (path / "train").is_dir())


def load_tiny_imagenet(split: str = "train", *, max_per_class: int | None = None, root=None,
                       download: bool = True) -> Dataset:
    """Tiny ImageNet (200 classes): ``x`` float32 ``(N, 3, 64, 64)`` in [0, 1].

    ``split``: ``"train"`` (500 a class in the public release) or ``"val"`` (50 a class); the
    labels follow ``wnids.txt`` and ``class_names`` are the first name of each class in
    ``words.txt``. Greyscale images are converted to RGB. ``max_per_class`` keeps the images of
    lowest index in each class.
    """
    _check_split(split, ("train", "val"))
    _check_max_per_class(max_per_class)
    base = data_root(root)
    folder = _ensure_folder("Tiny ImageNet", base, "tiny-imagenet-200", _tiny_complete, TINY_URLS,
                            "tiny-imagenet-200.zip", download, root is not None, md5=TINY_MD5)
    wnids = (folder / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}
    words = {}
    for line in (folder / "words.txt").read_text().splitlines():
        wnid, _, text = line.partition("\t")
        if wnid in index:
            words[wnid] = text.split(",")[0].strip()
    per_class: dict[str, list[Path]] = {w: [] for w in wnids}
    if split == "train":
        for w in wnids:
            files = (folder / "train" / w / "images").glob("*.JPEG")
            per_class[w] = sorted(files, key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    else:
        for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
            name, wnid = line.split("\t")[:2]
            per_class[wnid].append(folder / "val" / "images" / name)
    paths, labels = [], []
    for w in wnids:
        files = per_class[w][:max_per_class] if max_per_class is not None else per_class[w]
        paths += files
        labels += [index[w]] * len(files)
    x = _decode(paths, None, f"tiny-imagenet/{split}")
    if x.shape[1:] != (3, 64, 64):
        raise ValueError(f"Tiny ImageNet images should be 64x64, got {tuple(x.shape[2:])} in {folder}")
    return Dataset(name="tiny-imagenet-200", split=split, x=x,
                   y=torch.tensor(labels, dtype=torch.int64),
                   class_names=tuple(words.get(w, w) for w in wnids),
                   files=tuple(str(p.relative_to(base)) for p in paths))


# ----------------------------------------------------------------------------- ImageNet-1k and the like
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def load_image_folder(root, split: str = "train", *, image_size: int = 64,
                      max_per_class: int | None = None) -> Dataset:
    """A classification set in the ImageFolder layout, ``<root>/<split>/<class>/<image>``: the
    layout of torchvision's ImageNet (ILSVRC-2012 train and val, one folder per WordNet id), as
    chapter 2's ``imagenet_root`` expects. There is no download: ImageNet needs an account.

    ``x``: **uint8** ``(N, 3, image_size, image_size)``, 0-255 (1.28 million ImageNet images at
    64x64 take 16 GB so, four times that as float); each image resized so its shorter side is
    ``image_size`` px and centre-cropped. Labels follow the sorted class folders; the class names
    come from ``LOC_synset_mapping.txt`` (Kaggle's ImageNet) or ``words.txt`` in ``root`` when one
    is there, else the folder names. ``max_per_class`` keeps the first images of each class in
    sorted order.
    """
    _check_max_per_class(max_per_class)
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    base = Path(root).expanduser()
    folder = base / split
    if not folder.is_dir():
        raise DataNotFoundError(
            f"no {split!r} folder in {base}: expected the ImageFolder layout "
            f"{base}/{split}/<class>/<image>.JPEG (torchvision's ImageNet layout)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataNotFoundError(f"{folder} has no class folders (expected {folder}/<class>/<image>)")
    names = {}
    for mapping in ("LOC_synset_mapping.txt", "words.txt"):
        if (base / mapping).is_file():
            for line in (base / mapping).read_text().splitlines():
                wnid, _, text = line.replace("\t", " ").partition(" ")
                names.setdefault(wnid, text.split(",")[0].strip())
    paths, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files = files[:max_per_class] if max_per_class is not None else files
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    x = _decode(paths, image_size, f"{base.name}/{split}", as_uint8=True)
    return Dataset(name=base.name, split=split, x=x, y=torch.tensor(labels, dtype=torch.int64),
                   class_names=tuple(names.get(c, c) for c in classes),
                   files=tuple(str(p.relative_to(base)) for p in paths))
