"""A six-sample, three-class, 8x8 dataset shared by the scorer tests (see the ``data`` fixture in
conftest.py), and the constants to recompute its normalised inputs by hand."""
import torch

from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.scorers import ScoringContext

CPU = torch.device("cpu")
MEAN, STD = (0.5,), (0.25,)
TRAIN_LABELS = [0, 1, 2, 0, 1, 2]


def dataset() -> Dataset:
    g = torch.Generator().manual_seed(1234)
    train = TensorSplit(torch.randint(0, 256, (6, 1, 8, 8), generator=g, dtype=torch.uint8),
                        torch.tensor(TRAIN_LABELS), MEAN, STD)
    test = TensorSplit(torch.randint(0, 256, (4, 1, 8, 8), generator=g, dtype=torch.uint8),
                       torch.tensor([2, 1, 0, 1]), MEAN, STD)
    return Dataset("tiny", train, test, num_classes=3, in_channels=1, augment=Augment(crop_padding=1, flip=True))


def context(data, seed=0, **paths) -> ScoringContext:
    return ScoringContext(data, seed, CPU, 4, **paths)
