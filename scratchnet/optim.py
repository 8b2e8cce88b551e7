"""Optimizers (SGD with momentum and Nesterov, Adam, AdamW, Entropy-SGD) and learning-rate schedules.

An optimizer updates `p.data` from `p.grad` for each parameter it was given; its per-parameter state (momentum
buffers, Adam's moments) is saved and restored with `state_dict`, so a resumed run continues bit-identically.
A schedule is a function of training time in epochs (fractional within an epoch) that returns the learning rate.
"""

from __future__ import annotations

import math

import numpy as np

from scratchnet import streams


def _check(value: float, name: str, low: float = 0.0, high: float = math.inf, high_open: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or not (low <= value < high if high_open else low <= value <= high):
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


class Optimizer:
    """Holds the parameters, the learning rate `lr`, and a state array list per parameter."""

    state_names: tuple[str, ...] = ()

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty: the optimizer has nothing to train")
        self.lr = _check(lr, "lr")
        self.steps = 0
        self.state = {name: [np.zeros_like(p.data) for p in self.params] for name in self.state_names}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check(value, "lr")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        self.steps += 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                if p.grad.shape != p.data.shape:
                    raise ValueError(f"params[{i}].grad has shape {p.grad.shape}, the parameter {p.data.shape}")
                self._follow_dtype(i)
                self.update(i, p.data, p.grad.astype(p.data.dtype, copy=False))

    def _follow_dtype(self, i: int) -> None:
        """Parameter i's state in the parameter's dtype: a model cast (`Module.to`) after its optimizer was made
        would otherwise run every update through the old dtype's moments."""
        dtype = self.params[i].data.dtype
        for arrays in self.state.values():
            if arrays[i].dtype != dtype:
                arrays[i] = arrays[i].astype(dtype)

    def update(self, i: int, w: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"steps": np.array(self.steps), "lr": np.array(self.lr)}
        for name, arrays in self.state.items():
            state.update({f"{name}.{i}": a.copy() for i, a in enumerate(arrays)})
        return state

    def load_state_dict(self, state: dict) -> None:
        expected = {"steps", "lr"} | {f"{n}.{i}" for n, arrays in self.state.items() for i in range(len(arrays))}
        if set(state) != expected:
            raise ValueError(f"optimizer state does not fit: missing {sorted(expected - set(state))}, "
                             f"unexpected {sorted(set(state) - expected)}")
        self.steps, self.lr = int(state["steps"]), float(state["lr"])
        for name, arrays in self.state.items():
            for i, a in enumerate(arrays):
                if state[f"{name}.{i}"].shape != a.shape:
                    raise ValueError(f"optimizer state {name}.{i} has shape {state[f'{name}.{i}'].shape}, "
                                     f"the parameter {a.shape}")
                arrays[i] = np.array(state[f"{name}.{i}"], dtype=self.params[i].data.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball or Nesterov momentum and L2 weight decay (PyTorch's form):

        g <- grad + weight_decay * w;   b <- momentum * b + g (b = 0 before the first step);
        w <- w - lr * (g + momentum * b if nesterov else b).
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = _check(momentum, "momentum", 0.0, 1.0, high_open=True)
        self.weight_decay = _check(weight_decay, "weight_decay")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def update(self, i, w, g):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            buffer = self.state["momentum_buffer"][i]  # starts at 0, so after the first step it equals g
            buffer *= self.momentum
            buffer += g
            g = g + self.momentum * buffer if self.nesterov else buffer
        w -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias-corrected moments; `weight_decay` adds L2 to the gradient (decoupled=False)
    or shrinks the weights directly, w <- w - lr * weight_decay * w (decoupled=True: AdamW, Loshchilov & Hutter).
    The bias correction of a parameter counts its own updates (as PyTorch's): one that first gets a gradient at a
    later step starts its correction afresh.
    """

    state_names = ("m", "v")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled: bool = False):
        super().__init__(params, lr)
        self.beta1 = _check(betas[0], "betas[0]", 0.0, 1.0, high_open=True)
        self.beta2 = _check(betas[1], "betas[1]", 0.0, 1.0, high_open=True)
        self.eps = _check(eps, "eps")
        self.weight_decay = _check(weight_decay, "weight_decay")
        self.decoupled = decoupled
        self.updates = np.zeros(len(self.params), np.int64)

    def update(self, i, w, g):
        if self.weight_decay and self.decoupled:
            w -= self.lr * self.weight_decay * w
        elif self.weight_decay:
            g = g + self.weight_decay * w
        m, v = self.state["m"][i], self.state["v"][i]
        self.updates[i] += 1
        t = int(self.updates[i])
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        w -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**super().state_dict(), "updates": self.updates.copy()}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        updates = state.pop("updates", None)
        if updates is None or np.shape(updates) != self.updates.shape:
            raise ValueError(f"optimizer state does not fit: 'updates' must hold one count per parameter "
                             f"({len(self.params)}), got {None if updates is None else np.shape(updates)}")
        super().load_state_dict(state)
        self.updates[...] = updates


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); PyTorch's default decay 0.01."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay, decoupled=True)


# ---------------------------------------------------------------------- learning-rate schedules


class Constant:
    """lr(t) = base_lr."""

    def __init__(self, base_lr: float):
        self.base_lr = _check(base_lr, "base_lr")

    def __call__(self, epoch: float) -> float:
        return self.base_lr


class MultiStep:
    """lr(t) = base_lr * gamma^(number of milestones <= t), milestones in epochs (Madry et al., TRADES)."""

    def __init__(self, base_lr: float, milestones, gamma: float = 0.1):
        self.base_lr = _check(base_lr, "base_lr")
        self.milestones = sorted(float(m) for m in milestones)
        self.gamma = _check(gamma, "gamma")

    def __call__(self, epoch: float) -> float:
        return self.base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)


class Cosine:
    """lr(t) = min_lr + (base_lr - min_lr) (1 + cos(pi t / total)) / 2 for t <= total (Loshchilov & Hutter 2017)."""

    def __init__(self, base_lr: float, total_epochs: float, min_lr: float = 0.0):
        self.base_lr, self.min_lr = _check(base_lr, "base_lr"), _check(min_lr, "min_lr")
        self.total = _check(total_epochs, "total_epochs")
        if self.total == 0:
            raise ValueError("total_epochs must be > 0")

    def __call__(self, epoch: float) -> float:
        progress = min(epoch / self.total, 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class LinearWarmup:
    """Ramp linearly from 0 to `schedule(warmup_epochs)` over the first `warmup_epochs`, then follow `schedule`."""

    def __init__(self, schedule, warmup_epochs: float):
        self.schedule = schedule
        self.warmup = _check(warmup_epochs, "warmup_epochs")

    def __call__(self, epoch: float) -> float:
        if epoch < self.warmup:
            return self.schedule(self.warmup) * epoch / self.warmup
        return self.schedule(epoch)


# ---------------------------------------------------------------------- Entropy-SGD


def local_entropy_gradient(gradient, theta, gamma: float, L: int, inner_lr: float, noise: float, alpha: float, rng,
                           first_gradient=None) -> list[np.ndarray]:
    """The SGLD estimate of grad Phi_gamma(theta) = gamma (theta - mu) of Entropy-SGD (Chaudhari et al. 2017,
    Algorithm 1), for parameters given as a list of arrays. From theta' = mu = theta, L times:

        theta' <- theta' - inner_lr (grad f(theta') - gamma (theta - theta')) + noise sqrt(2 inner_lr) N(0, I);
        mu <- (1 - alpha) mu + alpha theta'.

    The noise is SGLD's at temperature T = noise^2 (the reference code's scaling). `gradient(theta')` returns
    grad f at theta' (a list like theta); `first_gradient`, when given, is grad f(theta) and saves one call.
    """
    inner = [t.copy() for t in theta]
    mu = [t.copy() for t in theta]
    for step in range(L):
        grads = first_gradient if step == 0 and first_gradient is not None else gradient(inner)
        for t, t_inner, m, g in zip(theta, inner, mu, grads, strict=True):
            t_inner -= inner_lr * (g - gamma * (t - t_inner))
            if noise:
                t_inner += (noise * math.sqrt(2 * inner_lr) * rng.standard_normal(t.shape)).astype(t.dtype)
            m *= 1 - alpha
            m += alpha * t_inner
    return [gamma * (t - m) for t, m in zip(theta, mu, strict=True)]


class EntropySGD(Optimizer):
    """Entropy-SGD (Chaudhari et al., ICLR 2017, Algorithm 1): gradient descent on the local entropy
    Phi_gamma(theta) = -T log int exp(-(f(theta') + gamma ||theta - theta'||^2 / 2) / T) d theta', whose gradient
    gamma (theta - mu) is estimated by L steps of SGLD (`local_entropy_gradient`), then

        theta <- theta - lr gamma_t (theta - mu),   gamma_t = gamma (1 + scoping)^t (t: outer steps so far).

    `step(closure)` takes `p.grad` as grad f(theta) for the first SGLD step and calls `closure()` for each later
    one; the closure must compute the loss at the current weights and backpropagate it (`fit` passes one that runs
    the objective on a new minibatch each call, as Algorithm 1, so an adversarial objective attacks the inner
    iterate theta'). An outer step thus costs L gradients on L minibatches.
    `weight_decay` adds weight_decay * theta' to the inner gradient, as the reference code. The noise comes from
    `streams.generator(seed, "noise", t)`, so a run is deterministic for a fixed seed and resumes exactly.
    """

    takes_closure = True

    def __init__(self, params, lr: float = 1.0, L: int = 20, gamma: float = 0.03, scoping: float = 1e-3,
                 inner_lr: float = 0.1, noise: float = 1e-4, alpha: float = 0.25, weight_decay: float = 0.0,
                 seed: int = 0):
        super().__init__(params, lr)
        if isinstance(L, bool) or not isinstance(L, int) or L < 1:
            raise ValueError(f"L must be an int >= 1, got {L!r}")
        self.L = L
        self.gamma = _check(gamma, "gamma")
        if self.gamma == 0:
            raise ValueError("gamma must be > 0, got 0.0")
        self.scoping = _check(scoping, "scoping")
        self.inner_lr = _check(inner_lr, "inner_lr")
        self.noise = _check(noise, "noise")
        self.alpha = _check(alpha, "alpha", 0.0, 1.0)
        if self.alpha == 0:
            raise ValueError("alpha must be in (0, 1], got 0.0")
        self.weight_decay = _check(weight_decay, "weight_decay")
        self.seed = seed

    def step(self, closure=None) -> None:
        """One outer step: L SGLD steps from the current weights, then theta <- theta - lr gamma_t (theta - mu)."""
        active = [p for p in self.params if p.grad is not None]
        if closure is None and self.L > 1:
            raise ValueError(f"EntropySGD.step needs a closure that recomputes the loss for its L={self.L} steps")
        gamma = self.gamma * (1 + self.scoping) ** self.steps
        theta = [p.data.copy() for p in active]

        def gradient(inner):
            for p, t_inner in zip(active, inner, strict=True):
                p.data[...] = t_inner
            self.zero_grad()
            closure()
            return self._inner_gradients(active)

        rng = streams.generator(self.seed, "noise", self.steps)
        entropy_grad = local_entropy_gradient(gradient, theta, gamma, self.L, self.inner_lr, self.noise, self.alpha,
                                              rng, first_gradient=self._inner_gradients(active))
        for p, t, g in zip(active, theta, entropy_grad, strict=True):
            p.data[...] = t - self.lr * g
        self.steps += 1

    def _inner_gradients(self, active) -> list[np.ndarray]:
        """grad f + weight_decay * theta' at the current weights (a parameter left without gradient gets zeros)."""
        return [(np.zeros_like(p.data) if p.grad is None else p.grad.astype(p.dtype, copy=False))
                + self.weight_decay * p.data for p in active]
