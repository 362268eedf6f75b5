"""Image augmentations on one (H, W, C) numpy image (course API)."""
import numpy as np


class Transform:
    """Callable mapping one image to another."""

    def __call__(self, x):
        raise NotImplementedError


class RandomFlipHorizontal(Transform):
    """Mirror the image left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img: np.ndarray) -> np.ndarray:
        flip_img = np.random.rand() < self.p
        return img[:, ::-1, :] if flip_img else img


class RandomCrop(Transform):
    """Shift the image by up to `padding` pixels on each axis, filling the uncovered border with zeros."""

    def __init__(self, padding=3):
        self.padding = padding

    def __call__(self, img: np.ndarray) -> np.ndarray:
        shift_x, shift_y = np.random.randint(low=-self.padding, high=self.padding + 1, size=2)
        pad = self.padding
        height, width, _ = img.shape
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))  # (H + 2p, W + 2p, C)
        return padded[pad + shift_x: pad + shift_x + height, pad + shift_y: pad + shift_y + width, :]
