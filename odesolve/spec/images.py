"""Finite data sets for the simulator, preprocessed as in the paper (centred, rescaled).

Everything here works offline: :func:`digits` (scikit-learn's bundled 8×8 digits) and
:func:`photo_patches` (grayscale patches of scikit-image's bundled photographs, a
CIFAR-like set) need no download; :func:`load_cifar10` and :func:`load_fashion_mnist`
read the original files of those data sets from a path the user already has.

Preprocessing (:meth:`Dataset.from_images`): every pixel is centred on its mean over the
data set, then all values are divided by their overall standard deviation, so that the
second-moment matrix ``Ω = XᵀX/n`` has ``tr Ω / D = 1``.

>>> data = digits()
>>> data.X.shape, data.name
((1797, 64), 'digits')
>>> round(float(np.trace(data.X.T @ data.X) / data.n / data.D), 12)
1.0
>>> train, test = data.split(300, np.random.default_rng(0))
>>> train.n, test.n
(1497, 300)
"""
from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spectra import Spectrum, covariance_spectrum

__all__ = ["Dataset", "digits", "photo_patches", "load_cifar10", "load_fashion_mnist",
           "load_image_dataset", "raw_images", "IMAGE_DATASETS", "RAW_IMAGE_SETS", "PHOTOGRAPHS"]

#: Image data sets of the workflow (``[data] dataset``): the first two are bundled with
#: scikit-learn / scikit-image, the others are read from files the user has.
IMAGE_DATASETS = ("digits", "patches", "cifar10", "fashion_mnist")
#: Raw (unprocessed) bundled image sets of :func:`raw_images` (the limits' universality check).
RAW_IMAGE_SETS = ("digits", "camera")

#: scikit-image's bundled photographs that :func:`photo_patches` cuts patches from.
PHOTOGRAPHS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
               "coins", "moon", "hubble_deep_field")

#: Luminance weights of scikit-image's ``rgb2gray`` (ITU-R BT.709), used for CIFAR-10.
_GRAY = np.array([0.2125, 0.7154, 0.0721])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A finite set of n samples in D dimensions, one per row of ``X``.

    Build it with :meth:`from_images` (or a loader) to get the paper's preprocessing;
    the constructor itself only checks and stores ``X``.

    Parameters
    ----------
    X : array_like, shape (n, D)
        The samples.
    name : str
        Label for messages and results.
    image_shape : tuple of int, optional
        Shape of one image (``(H, W)`` or ``(C, H, W)``), whose product is D.
    """

    X: np.ndarray
    name: str = "data"
    image_shape: tuple | None = None

    def __post_init__(self):
        X = np.ascontiguousarray(self.X, dtype=float)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 2:
            raise ValueError(f"{self.name}: samples must be an (n, D) array with n, D >= 2, "
                             f"got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{self.name}: samples contain NaN or inf")
        if self.image_shape is not None and int(np.prod(self.image_shape)) != X.shape[1]:
            raise ValueError(f"{self.name}: image shape {self.image_shape} does not have "
                             f"D = {X.shape[1]} pixels")
        object.__setattr__(self, "X", X)

    @property
    def n(self) -> int:
        """Number of samples."""
        return self.X.shape[0]

    @property
    def D(self) -> int:
        """Input dimension."""
        return self.X.shape[1]

    @classmethod
    def from_images(cls, images, name: str) -> "Dataset":
        """Flatten, centre every pixel and divide by the overall standard deviation.

        Parameters
        ----------
        images : array_like, shape (n, ...)
            One image (any shape) per entry of the first axis.
        name : str
            Label of the data set.
        """
        images = np.asarray(images, dtype=float)
        if images.ndim < 2:
            raise ValueError(f"{name}: need an array of images, got shape {images.shape}")
        X = images.reshape(len(images), -1)
        X = X - X.mean(axis=0)
        std = np.sqrt(np.mean(X**2))
        if not std > 0:
            raise ValueError(f"{name}: all samples are identical")
        return cls(X / std, name, tuple(images.shape[1:]))

    def spectrum(self) -> Spectrum:
        """Eigen-decomposition of ``Ω = XᵀX/n`` (with eigenvectors, every mode tracked).

        This is the second moment of the samples, i.e. the covariance that online SGD
        on them sees (the covariance itself for a centred set).
        """
        return covariance_spectrum(self.X.T @ self.X / self.n, name=self.name)

    def split(self, n_test: int, rng: np.random.Generator):
        """Random disjoint ``(train, test)`` subsets with ``n_test`` test samples.

        The subsets are not re-centred: they are samples of the same distribution.
        """
        if isinstance(n_test, bool) or not float(n_test).is_integer() or not 1 <= n_test < self.n:
            raise ValueError(f"{self.name}: need 1 <= n_test < n = {self.n} held-out samples, "
                             f"got n_test = {n_test}")
        order = rng.permutation(self.n)
        n_test = int(n_test)
        return (Dataset(self.X[order[n_test:]], f"{self.name}-train", self.image_shape),
                Dataset(self.X[order[:n_test]], f"{self.name}-test", self.image_shape))


def digits(size: int | None = None) -> Dataset:
    """scikit-learn's 1797 handwritten 8×8 digits (D = 64), bundled with scikit-learn.

    Parameters
    ----------
    size : int, optional
        Resize the images to ``size × size`` (D = size²).
    """
    # scikit-learn and scikit-image take seconds to import: only loading an image set pays it
    from sklearn.datasets import load_digits

    return Dataset.from_images(_resize(load_digits().images, size), "digits")


def photo_patches(size: int = 32, n_patches: int = 10000,
                  rng: np.random.Generator | None = None) -> Dataset:
    """Grayscale ``size × size`` patches of scikit-image's bundled photographs.

    A CIFAR-like set of natural images that needs no download: each patch comes from
    one of :data:`PHOTOGRAPHS` (chosen with probability proportional to its number of
    patch positions, so every position of every photograph is equally likely) at a
    uniformly random position.

    Parameters
    ----------
    size : int
        Side of the patches (D = size²); at most 300 (the smallest photograph).
    n_patches : int
        Number of patches.
    rng : numpy.random.Generator, optional
        Source of the positions; ``default_rng(0)`` if omitted, so the default set is
        always the same.
    """
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    photos = []
    for name in PHOTOGRAPHS:
        image = getattr(skimage.data, name)()
        photos.append(rgb2gray(image) if image.ndim == 3 else img_as_float(image))
    smallest = min(min(p.shape) for p in photos)
    if isinstance(size, bool) or not float(size).is_integer() or not 2 <= size <= smallest:
        raise ValueError(f"patch size must be an integer in [2, {smallest}], got {size!r}")
    if isinstance(n_patches, bool) or not float(n_patches).is_integer() or n_patches < 2:
        raise ValueError(f"n_patches must be an integer >= 2, got {n_patches!r}")
    size, n_patches = int(size), int(n_patches)
    rng = np.random.default_rng(0) if rng is None else rng
    positions = np.array([(p.shape[0] - size + 1) * (p.shape[1] - size + 1) for p in photos])
    which = rng.choice(len(photos), size=n_patches, p=positions / positions.sum())
    patches = np.empty((n_patches, size, size))
    for j, i in enumerate(which):
        rows, cols = photos[i].shape
        r, c = rng.integers(rows - size + 1), rng.integers(cols - size + 1)
        patches[j] = photos[i][r:r + size, c:c + size]
    return Dataset.from_images(patches, f"patches{size}")


def load_cifar10(path, *, grayscale: bool = True, size: int | None = None) -> Dataset:
    """CIFAR-10 from its python version (pickled batch files) already on disk.

    Parameters
    ----------
    path : str or Path
        One batch file, or the ``cifar-10-batches-py`` folder: all its ``data_batch_*``
        files are read (50 000 images).
    grayscale : bool
        Convert to gray with scikit-image's luminance weights (D = 1024, as in the
        paper); otherwise keep the three colour planes (D = 3072).
    size : int, optional
        Resize the 32×32 images to ``size × size``.

    Notes
    -----
    The batch files are pickles; they are read with an unpickler that only accepts
    numpy arrays and plain Python containers, so a tampered file cannot run code.
    """
    path = Path(path)
    files = sorted(path.glob("data_batch_*")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"no CIFAR-10 batch files (data_batch_*) in {path}")
    batches = [_cifar_batch(f) for f in files]
    # each row holds the red, green and blue 32×32 planes, row-major: make channels last
    images = np.moveaxis(np.concatenate(batches).reshape(-1, 3, 32, 32), 1, 3).astype(float)
    if grayscale:
        images = images @ _GRAY
    images = _resize(images, size)
    if not grayscale:
        images = np.moveaxis(images, 3, 1)  # back to the file's plane order
    return Dataset.from_images(images, "cifar10" + ("-gray" if grayscale else ""))


def load_fashion_mnist(path, *, size: int | None = None) -> Dataset:
    """Fashion-MNIST (or MNIST) images from an idx3-ubyte file already on disk.

    Parameters
    ----------
    path : str or Path
        The images file (``train-images-idx3-ubyte``, optionally gzipped as ``.gz``), or
        the folder holding it.
    size : int, optional
        Resize the 28×28 images to ``size × size``.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz")
                 if (path / n).exists()]
        if not found:
            raise ValueError(f"no train-images-idx3-ubyte[.gz] file in {path}")
        path = found[0]
    return Dataset.from_images(_resize(_read_idx(path), size), "fashion_mnist")


# aliases under the names of the ``[data] dataset`` key of odesolve's configuration files
cifar10 = load_cifar10
fashion_mnist = load_fashion_mnist


def load_image_dataset(name: str, path=None, size: int | None = None) -> Dataset:
    """One of :data:`IMAGE_DATASETS` by name (``path`` for the ones read from files).

    Raises
    ------
    ValueError
        For an unknown name, or a missing ``path`` where one is needed.
    """
    options = {} if size is None else {"size": size}
    if name == "digits":
        return digits(**options)
    if name == "patches":
        return photo_patches(**options)
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image data set {name!r}: expected one of {IMAGE_DATASETS}")
    if path is None:
        raise ValueError(f"the {name} data set is read from files: give their path")
    return {"cifar10": load_cifar10, "fashion_mnist": load_fashion_mnist}[name](path, **options)


def _resize(images, size):
    """Images (n, H, W[, C]) resized to ``size × size`` (unchanged if ``size`` is None)."""
    from skimage.transform import resize

    images = np.asarray(images, dtype=float)
    if size is None or images.shape[1:3] == (size, size):
        return images
    if isinstance(size, bool) or not float(size).is_integer() or size < 2:
        raise ValueError(f"image size must be an integer >= 2, got {size!r}")
    shape = (int(size), int(size)) + images.shape[3:]
    return np.stack([resize(im, shape, anti_aliasing=size < im.shape[0]) for im in images])


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler restricted to what CIFAR-10 batches hold: numpy arrays and builtins.

    Besides the distributed (Python 2) files, batches re-pickled by Python 3 load too:
    protocol 2 writes byte strings through ``_codecs.encode`` and protocol 5 writes
    arrays through ``numpy._core.numeric._frombuffer``; neither can run code.
    """

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _cifar_batch(file: Path) -> np.ndarray:
    """The ``data`` array (n, 3072) of uint8 of one CIFAR-10 batch file."""
    try:
        with open(file, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise ValueError(f"no such file: {file}") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ValueError(f"{file} is not a CIFAR-10 batch file: {exc}") from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    data = None if data is None else np.asarray(data)
    if data is None or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{file} is not a CIFAR-10 batch file: no (n, 3072) 'data' array")
    return data


def _read_idx(path: Path) -> np.ndarray:
    """Images (n, rows, cols) of an idx3-ubyte file, gzipped or not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    # header: two zero bytes, element type (0x08 = unsigned byte), number of dimensions,
    # then each dimension as a big-endian 32-bit integer
    if len(raw) < 16 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != 3:
        raise ValueError(f"{path} is not an idx3-ubyte image file")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:16], dtype=">u4"))
    if len(raw) - 16 != int(np.prod(dims)):
        raise ValueError(f"{path}: header announces {dims} images but holds "
                         f"{len(raw) - 16} bytes of pixels")
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(dims)


def raw_images(name: str) -> np.ndarray:
    """Raw pixel values, one image (or 8×8 patch) per row, of a bundled image set.

    ``"digits"``: scikit-learn's 1797 digits (1797 × 64); ``"camera"``: the 4096
    non-overlapping 8×8 tiles of scikit-image's camera photograph (4096 × 64).

    Raises
    ------
    ValueError
        For a name not in :data:`RAW_IMAGE_SETS`.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data.astype(float)
    if name == "camera":
        from skimage.data import camera

        image = camera().astype(float)                          # 512 × 512
        return image.reshape(64, 8, 64, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    raise ValueError(f"unknown image set {name!r}: expected one of {RAW_IMAGE_SETS}")
