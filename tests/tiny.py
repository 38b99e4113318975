"""A six-sample, three-class, 8x8 dataset shared by the scorer tests (see the ``data`` fixture in
conftest.py), and the constants to recompute its normalised inputs by hand."""
import torch

from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.models import build_model
from pipeline.scorers import ScoringContext
from pipeline.seeding import seeded_init

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


def make_model(seed=7):
    """A width-2 CNN for the tiny data (3 classes, 1 channel), in eval mode."""
    with seeded_init(seed, "test-model"):
        model = build_model("cnn", 3, 1, width=2)
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():  # non-trivial running statistics, so eval vs train mode matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
    return model.eval()


def inputs(split):
    """The normalised un-augmented images, computed independently of ``split.batches``."""
    return (split.images.float() / 255 - MEAN[0]) / STD[0]


def random_dataset(n_train: int, n_test: int = 6) -> Dataset:
    """Random 8x8 images of three classes (labels 0, 1, 2, 0, ...) for the training-loop tests."""
    g = torch.Generator().manual_seed(0)

    def split(n):
        return TensorSplit(torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n) % 3,
                           MEAN, STD)

    return Dataset("tiny", split(n_train), split(n_test), 3, 1, Augment(crop_padding=1, flip=True))
