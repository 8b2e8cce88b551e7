"""Weight averaging: an exponential moving average of the weights along the training trajectory (Polyak &
Juditsky 1992), which Gowal et al. (2020, "Uncovering the limits of adversarial training", Section 4) found to
raise the robust accuracy of adversarially trained networks: the average sits in a flatter, better generalizing
region than the last iterate.

    average = WeightAverage(model, decay=0.999)
    fit(model, loader, test, objective, optimizer, callbacks=[average])
    with average.applied():   # the model holds the averaged weights inside the block
        evaluate(model, test)

`fit` checkpoints the average with the model (through `state_dict`), so a resumed run averages exactly as an
uninterrupted one.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from scratchnet.training import Callback


class WeightAverage(Callback):
    """After every optimizer step: average <- d * average + (1 - d) * weights, with d = min(decay, (1 + n) / (10 + n))
    after n updates, so that the first steps' random weights fade quickly. Float buffers (BatchNorm's running
    statistics) are averaged the same way; other buffers are copied."""

    def __init__(self, model, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.model, self.decay, self.updates = model, decay, 0
        self.average = model.state_dict()

    def on_step(self, state) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in self.model.state_dict().items():
            if value.shape != self.average[name].shape:
                raise ValueError(f"the model's {name!r} has shape {value.shape}, its average "
                                 f"{self.average[name].shape}")
            if value.dtype != self.average[name].dtype:  # the model was cast (Module.to) after the average was made
                self.average[name] = self.average[name].astype(value.dtype)
            if np.issubdtype(value.dtype, np.floating):
                self.average[name] *= d
                self.average[name] += (1 - d) * value
            else:
                self.average[name] = value
        self.updates += 1

    @contextmanager
    def applied(self):
        """Inside the block the model holds the averaged weights; the trained ones come back afterwards."""
        trained = self.model.state_dict()
        try:
            self.model.load_state_dict(self.average)
            yield self.model
        finally:
            self.model.load_state_dict(trained)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**{f"average/{k}": v.copy() for k, v in self.average.items()}, "updates": np.array(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        average = {k[len("average/"):]: np.asarray(v) for k, v in state.items() if k.startswith("average/")}
        if set(average) != set(self.average) or "updates" not in state:
            raise ValueError(f"the saved average holds {sorted(average)}, the model {sorted(self.average)}")
        for name, value in average.items():
            if value.shape != self.average[name].shape or value.dtype != self.average[name].dtype:
                raise ValueError(f"the saved average of {name!r} has shape {value.shape} and dtype {value.dtype}, "
                                 f"the model {self.average[name].shape} and {self.average[name].dtype}")
        self.average, self.updates = average, int(state["updates"])
