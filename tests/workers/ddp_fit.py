"""Run under torchrun (or alone): train a batch-norm-free model with ``fit`` on synthetic data and
save this rank's final weights to <out>/rank<r>.pt, for tests/test_devices.py."""
import sys
from pathlib import Path

import torch
import torch.nn as nn

from pipeline import devices
from pipeline.data.splits import Augment, Dataset, TensorSplit
from pipeline.losses import build_loss
from pipeline.seeding import seeded_init
from pipeline.train import TrainConfig, fit


def main(out: Path) -> None:
    torch.set_num_threads(1)
    devices.start(torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    split = lambda n: TensorSplit(torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8),  # noqa: E731
                                  torch.arange(n) % 3, (0.5,), (0.25,))
    data = Dataset("synthetic", split(48), split(12), 3, 1, Augment())
    with seeded_init(0, "init"):
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    history = fit(model, data, torch.arange(48), TrainConfig(epochs=3, batch_size=8, augment=False), seed=0,
                  device=torch.device("cpu"), loss=build_loss("ce"), log=lambda line: None)
    rank = devices.ranks().rank
    torch.save({"state_dict": model.state_dict(), "history": history.to_dict("list")}, out / f"rank{rank}.pt")
    devices.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
