"""Step decay: the base rate times gamma for every milestone the epoch has reached, set at the
start of each epoch (torch's MultiStepLR stepped once per epoch; RepDistiller's
``base * 0.1 ** (number of milestones < epoch)`` with 1-based epochs): with milestones [150, 180,
210], 0-based epoch 149 (the 150th) still runs at the base rate and epoch 150 at base x gamma."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UserError
from pipeline.schedules import SCHEDULES, Schedule, WarmupParams


@SCHEDULES.register("multistep")
class MultiStep(Schedule):
    @dataclass(frozen=True)
    class Params(WarmupParams):
        milestones: tuple[int, ...] = ()  # 0-based epochs at whose start the rate is multiplied by gamma
        gamma: float = 0.1

        def __post_init__(self):
            super().__post_init__()
            if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
                raise UserError(f"multistep milestones must be increasing epochs >= 1, got {list(self.milestones)}")
            if not 0 < self.gamma <= 1:
                raise UserError(f"multistep gamma must be in (0, 1], got {self.gamma}")

    def rate(self, base, clock):
        return base * self.params.gamma ** sum(clock.epoch >= m for m in self.params.milestones)
