"""Data: MNIST and Fashion-MNIST (IDX files), CIFAR-10 (pickle batches), batching and augmentation.

    train, test = scratchnet.data.mnist()              # ArrayDatasets: .x float32 NCHW in [0, 1], .y int64
    loader = scratchnet.data.BatchLoader(train, 128, seed=0, augment=scratchnet.data.RandomCrop(padding=2))
    for x, y in loader.epoch(3): ...                   # epoch 3's batches, the same on every run

Files are found in `$SCRATCHNET_DATA/<name>`, system folders, then `~/.cache/scratchnet/<name>`, downloaded
when absent, and verified against published SHA-256 checksums (locate.py, download.py, checksum.py).
"""

from scratchnet.data.augment import Compose, HorizontalFlip, RandomCrop
from scratchnet.data.cifar import cifar10
from scratchnet.data.errors import DatasetNotFoundError, MnistSplitWarning
from scratchnet.data.loader import ArrayDataset, BatchLoader
from scratchnet.data.mnist_family import fashion_mnist, mnist
from scratchnet.data.sparse_coding import SparseCoding, sparse_coding

__all__ = [
    "ArrayDataset", "BatchLoader", "Compose", "DatasetNotFoundError", "HorizontalFlip", "MnistSplitWarning",
    "RandomCrop", "cifar10", "fashion_mnist", "mnist",
]
__all__ += ["SparseCoding", "sparse_coding"]
