"""needle.data: datasets, data loader and image transforms (course API)."""
from needle.data.data_basic import DataLoader, Dataset
from needle.data.data_transforms import RandomCrop, RandomFlipHorizontal, Transform
from needle.data.datasets import MNISTDataset, NDArrayDataset, parse_mnist

__all__ = ["DataLoader", "Dataset", "MNISTDataset", "NDArrayDataset", "RandomCrop",
           "RandomFlipHorizontal", "Transform", "parse_mnist"]
