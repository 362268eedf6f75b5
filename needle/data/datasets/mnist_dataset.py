"""MNIST from gzip IDX files, validated: a wrong, truncated or corrupt file raises ValueError."""
import gzip
import struct
import zlib

import numpy as np

from needle.data.data_basic import Dataset

IMAGES_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension


def _read_gzip(filename) -> bytes:
    """The decompressed bytes of a gzip file; any decompression failure becomes ValueError."""
    try:
        with gzip.open(filename, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{filename}: not a valid gzip file ({exc})") from exc


def _read_idx(filename, magic: int, ndim: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Check the IDX header (magic, dims) and the payload size; return (dims, uint8 payload)."""
    raw = _read_gzip(filename)
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{filename}: truncated IDX header ({len(raw)} bytes)")
    (found_magic,) = struct.unpack(">i", raw[:4])
    if found_magic != magic:
        raise ValueError(f"{filename}: bad magic number {found_magic}, expected {magic}")
    dims = struct.unpack(f">{ndim}i", raw[4:header_size])
    expected = int(np.prod(dims, dtype=np.int64))
    if any(d < 0 for d in dims) or len(raw) - header_size != expected:
        raise ValueError(f"{filename}: size mismatch: header dims {dims} need {expected} bytes, "
                         f"file has {len(raw) - header_size}")
    return dims, np.frombuffer(raw, dtype=np.uint8, offset=header_size)


def _parse_with_shape(image_filename, label_filename):
    """(X (N, rows*cols) float32 in [0, 1], y (N,) uint8, (rows, cols))."""
    (count, rows, cols), pixels = _read_idx(image_filename, IMAGES_MAGIC, 3)
    (label_count,), labels = _read_idx(label_filename, LABELS_MAGIC, 1)
    if count != label_count:
        raise ValueError(f"count mismatch: {count} images in {image_filename}, "
                         f"{label_count} labels in {label_filename}")
    X = pixels.reshape(count, rows * cols).astype(np.float32) / np.float32(255.0)
    return X, labels.copy(), (rows, cols)


def parse_mnist(image_filename, label_filename) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST -> (X (N, rows*cols) float32 in [0, 1], y (N,) uint8), as in hw1."""
    X, y, _ = _parse_with_shape(image_filename, label_filename)
    return X, y


class MNISTDataset(Dataset):
    """MNIST images (N, 784) float32 and labels (N,) uint8; transforms see each image as (28, 28, 1).

    (Any image size in the IDX header works: (N, rows*cols), transforms see (rows, cols, 1).)

    An integer index returns (image (784,), label); a slice or index array returns ((B, 784), (B,)).
    """

    def __init__(self, image_filename: str, label_filename: str, transforms=None):
        super().__init__(transforms)
        self.images, self.labels, (rows, cols) = _parse_with_shape(image_filename, label_filename)
        self.image_shape = (rows, cols, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        return self.apply_transforms(image.reshape(self.image_shape)).reshape(-1)

    def __getitem__(self, index):
        images, labels = self.images[index], self.labels[index]
        if not self.transforms:
            return images, labels
        if images.ndim == 1:
            return self._transform_one(images), labels
        # Transforms draw their randomness per image, so apply them one image at a time.
        return np.stack([self._transform_one(image) for image in images]), labels
