"""Dataset and DataLoader (course API); batches are gathered with one numpy fancy-index per array."""
from typing import Iterator, Optional, Sequence

import numpy as np

from needle.autograd import Tensor


class Dataset:
    """Abstract dataset: subclasses implement __getitem__ and __len__."""

    def __init__(self, transforms: Optional[Sequence] = None):
        self.transforms = transforms

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def apply_transforms(self, x):
        """Apply each transform in order to one sample."""
        if self.transforms is not None:
            for transform in self.transforms:
                x = transform(x)
        return x


def _to_tensor(array) -> Tensor:
    """Batch array -> constant Tensor of the array's own dtype (course: `Tensor(x)`).

    An array that owns its memory (e.g. the fresh result of fancy indexing) is wrapped without a
    copy; anything else (a view into the dataset's storage) is copied, as Tensor() always did.
    """
    array = np.asarray(array)
    if not array.flags.owndata:
        array = array.copy()
    return Tensor.make_const(array)


class DataLoader:
    """Iterates a dataset in batches; iterating starts an epoch (a new permutation when shuffle=True)."""

    def __init__(self, dataset: Dataset, batch_size: Optional[int] = 1, shuffle: bool = False):
        self.dataset = dataset
        self.shuffle = shuffle
        self.batch_size = batch_size
        if batch_size is None or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")

    def _batch_indices(self) -> list[np.ndarray]:
        """Index arrays of this epoch's batches; the last one may be partial."""
        n = len(self.dataset)
        order = np.random.permutation(n) if self.shuffle else np.arange(n)
        return np.array_split(order, range(self.batch_size, n, self.batch_size))

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        batches = self._batch_indices()  # drawn when iteration starts, like the course
        return (self._collate(self.dataset[indices]) for indices in batches)

    @staticmethod
    def _collate(batch) -> tuple[Tensor, ...]:
        """Dataset output for an index array -> tuple of Tensors (a lone array becomes a 1-tuple)."""
        parts = batch if isinstance(batch, (tuple, list)) else (batch,)
        return tuple([_to_tensor(part) for part in parts])  # a list: cheaper than a generator

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)
