"""Feature purification (Allen-Zhu & Li 2021, "Feature Purification: How Adversarial Training Performs Robust Deep
Learning", FOCS 2021, arXiv 2005.10190); the recipe and the metrics are in shared/specs/feature-purification.md.

The story, in the sparse-coding model x = M z + xi, y = sign(<w*, z>) (scratchnet/data/sparse_coding.py):
clean training of a two-layer network finds the atoms M_j (the robust features) but each neuron also picks up a
small *dense mixture*, a multiple of u = M w* / ||w*|| that every step adds a little of. A perturbation along u
shifts all neurons coherently, so a small radius flips the label. Adversarial training, started from the clean
weights, removes the mixtures (purifies the features) instead of learning new ones:
w_i = beta_i w_i' + v_i with ||beta_i w_i'|| > ||v_i||, and the removed parts v_i are close to rank one, along u.
Linear classifiers cannot be robust at the same radius however they are trained (the lower bound).

Sections of the spec:
    2  TwoLayerNet (symmetric ReLU pairs with thresholds b_i, second layer fixed to 1), the threshold rule,
       logistic loss, online SGD on fresh batches (`train`), FGM and PGD for this network (`fgm`, `pgd`),
       the clean phase then the adversarial phase (`purify`).
    3  the metrics: dictionary coefficients, purity, residual fraction, dense alignment, the principle checks
       and the direction of the removed part (`coefficients` ... `removed_direction`), tracked in `purify`'s history.
    5  the image-scale imitation: the same checks for any layer of a deep network (`layer_change`) and the
       roughness of conv filters (`roughness`; the paper finds adversarially trained features smoother).
    4  the linear classifiers of the lower bound (`linear_network`, FGM training of it is exact robust training)
       and the ideal sparse network f* (`ideal_network`).

The network is small and its input gradient has a closed form, so everything here is plain vectorized NumPy on
whole batches (the autograd engine and Numba would not pay at this size): the full run at d = 200, m = 400 takes
a few minutes on two cores.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from scratchnet.data.sparse_coding import SparseCoding

NORMS = ("2", "inf")


# ---------------------------------------------------------------------------------------------- the network


def soft_threshold(u: np.ndarray, b) -> np.ndarray:
    """soft_b(u) = sign(u) max(|u| - b, 0) = ReLU(u - b) - ReLU(-u - b) = u - clip(u, -b, b): a symmetric ReLU pair
    (spec section 2). With b = 0 it is the identity, which is why a network without thresholds is linear."""
    return u - np.clip(u, -b, b)


@dataclass
class TwoLayerNet:
    """f(x) = sum_i soft_{b_i}(<w_i, x>): m hidden symmetric ReLU pairs, rows of W (m, d), thresholds b (m,), the
    second layer fixed to all ones (Allen-Zhu & Li 2021, section 2 of the spec)."""

    W: np.ndarray
    b: np.ndarray

    @classmethod
    def random(cls, m: int, d: int, init: float, rng) -> TwoLayerNet:
        """w_i ~ N(0, init^2 / d I) (so ||w_i|| is about `init`), b = 0."""
        rng = np.random.default_rng(rng)
        return cls(rng.standard_normal((m, d)) * (init / math.sqrt(d)), np.zeros(m))

    def copy(self) -> TwoLayerNet:
        return TwoLayerNet(self.W.copy(), self.b.copy())

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f(x) (n,) and the active pattern 1[|<w_i, x>| > b_i] (n, m) as floats."""
        u = x @ self.W.T
        return soft_threshold(u, self.b).sum(axis=1), (np.abs(u) > self.b).astype(x.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[0]

    def input_gradient(self, x: np.ndarray) -> np.ndarray:
        """grad_x f(x) = sum_i 1[|<w_i, x>| > b_i] w_i, one row per example (n, d)."""
        return self.forward(x)[1] @ self.W

    def set_thresholds(self, x: np.ndarray, q: float) -> None:
        """The threshold rule (spec section 2): b_i = the (1 - q)-quantile of |<w_i, x>| over the batch x, so each
        neuron fires on a fraction q of the inputs (q = 1.33 k / d: a little above one atom's frequency).
        The quantile is the order statistic of rank round((1 - q)(n - 1)) (a partition, not a sort)."""
        if not 0 <= q <= 1:
            raise ValueError(f"q is a firing fraction in [0, 1], got {q!r} (the default 1.33 k / d needs k <= 0.75 d)")
        rank = round((1.0 - q) * (len(x) - 1))
        self.b = np.partition(np.abs(x @ self.W.T), rank, axis=0)[rank]


def linear_network(w: np.ndarray) -> TwoLayerNet:
    """The linear classifier f(x) = <w, x> as a one-neuron network with b = 0."""
    return TwoLayerNet(np.asarray(w, dtype=float)[None, :].copy(), np.zeros(1))


def ideal_network(data: SparseCoding) -> TwoLayerNet:
    """f*(x) = sum_j w*_j soft_{1/2}(<M_j, x>): one neuron per atom, w_j = w*_j M_j, b_j = w*_j / 2 (spec section 4);
    it reads each atom's coefficient, ignoring small dense shifts."""
    return TwoLayerNet(data.w_star[:, None] * data.M.T, data.w_star / 2)


# ---------------------------------------------------------------------------------------------- attacks


def _check_attack(tau, norm) -> None:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (math.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite number >= 0, got {tau!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _unit(g: np.ndarray, norm: str) -> np.ndarray:
    """The steepest-ascent step of norm 1 along g: g / ||g||_2, or sign(g) for l-inf (zero rows stay zero)."""
    if norm == "inf":
        return np.sign(g)
    length = np.linalg.norm(g, axis=1, keepdims=True)
    return g / np.where(length > 0, length, 1.0)


def _project(delta: np.ndarray, tau: float, norm: str) -> np.ndarray:
    if norm == "inf":
        return np.clip(delta, -tau, tau)
    length = np.linalg.norm(delta, axis=1, keepdims=True)
    return delta * np.minimum(1.0, tau / np.maximum(length, 1e-300))


def _ascent_direction(net: TwoLayerNet, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """grad_x log(1 + exp(-y f(x))) = -sigmoid(-y f) y grad_x f, up to the positive factor sigmoid(-y f), which
    neither an l2-normalised nor a sign step sees (and which underflows to 0 for confident examples)."""
    return -y[:, None] * net.input_gradient(x)


def fgm(net: TwoLayerNet, x: np.ndarray, y: np.ndarray, tau: float, norm: str = "2") -> np.ndarray:
    """The fast gradient method: x + tau g / ||g||_2 (l2) or x + tau sign(g) (l-inf, FGSM), g the loss gradient."""
    _check_attack(tau, norm)
    return x + tau * _unit(_ascent_direction(net, x, y), norm)


def pgd(net: TwoLayerNet, x: np.ndarray, y: np.ndarray, tau: float, norm: str = "2", steps: int = 20,
        step_size: float | None = None) -> np.ndarray:
    """Projected gradient ascent on the logistic loss in the tau-ball around x: `steps` normalised steps of
    `step_size` (default 2.5 tau / steps, spec section 2), each followed by projection onto the ball."""
    _check_attack(tau, norm)
    step_size = 2.5 * tau / steps if step_size is None else step_size
    delta = np.zeros_like(x)
    for _ in range(steps):
        delta = _project(delta + step_size * _unit(_ascent_direction(net, x + delta, y), norm), tau, norm)
    return x + delta


def accuracy(net: TwoLayerNet, x: np.ndarray, y: np.ndarray, tau: float = 0.0, norm: str = "2",
             steps: int = 20) -> float:
    """The fraction of examples with y f(x') > 0, x' = x (tau = 0) or PGD's point in the tau-ball."""
    x_adv = pgd(net, x, y, tau, norm, steps) if tau > 0 else x
    return float(np.mean(y * net(x_adv) > 0))


def dense_attack_accuracy(net: TwoLayerNet, x: np.ndarray, y: np.ndarray, u: np.ndarray, tau: float) -> float:
    """Accuracy under the fixed dense perturbation delta = -y tau u (u the unit dense direction, spec section 3)."""
    return float(np.mean(y * net(x - tau * y[:, None] * u) > 0))


# ---------------------------------------------------------------------------------------------- training


def logistic_loss(margins: np.ndarray) -> np.ndarray:
    """l(t) = log(1 + exp(-t)), computed without overflow."""
    return np.logaddexp(0.0, -margins)


def sgd_step(net: TwoLayerNet, x: np.ndarray, y: np.ndarray, lr: float) -> float:
    """One SGD step on the mean logistic loss of y f(x) over the batch; the thresholds b are held fixed.
    d/dw_i l(y f) = -sigmoid(-y f) y 1[|<w_i, x>| > b_i] x. Returns the batch loss before the step."""
    f, active = net.forward(x)
    margins = y * f
    s = -y * np.exp(-np.logaddexp(0.0, margins))  # -y sigmoid(-y f)
    net.W -= lr * ((active * s[:, None]).T @ x) / len(x)
    return float(logistic_loss(margins).mean())


def train(net: TwoLayerNet, data: SparseCoding, steps: int, rng, *, q: float | None, lr: float = 0.1,
          batch: int = 512, tau: float = 0.0, norm: str = "2", on_step=None) -> None:
    """Online SGD on fresh batches (spec section 2). Each step draws a batch, sets the thresholds by the quantile
    rule on the clean batch (not if q is None: then b stays as it is), replaces x by its FGM point at radius tau
    (adversarial training; tau = 0 is clean training) and takes an SGD step. `on_step(step, net, loss)` after each."""
    _check_attack(tau, norm)
    rng = np.random.default_rng(rng)
    for step in range(1, steps + 1):
        x, y = data.sample(batch, rng)
        if q is not None:
            net.set_thresholds(x, q)
        if tau > 0:
            x = fgm(net, x, y, tau, norm)
        loss = sgd_step(net, x, y, lr)
        if on_step is not None:
            on_step(step, net, loss)


# ---------------------------------------------------------------------------------------------- metrics


def coefficients(W: np.ndarray, M: np.ndarray) -> np.ndarray:
    """c_ij = <w_i, M_j>: each neuron's weights in the dictionary's coordinates, C = W M (m, d)."""
    return W @ M


def alive(W: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """The neurons the metrics are taken over: ||w_i|| > fraction * the median norm (spec section 3)."""
    norms = np.linalg.norm(W, axis=1)
    return norms > fraction * np.median(norms)


def purity(C: np.ndarray) -> np.ndarray:
    """max_j |c_ij| / ||c_i||: 1 for a neuron that is one atom, about sqrt(2 log d / d) for a dense random one."""
    return np.abs(C).max(axis=1) / np.linalg.norm(C, axis=1)


def _residual(C: np.ndarray, r: int) -> np.ndarray:
    """c_i with its r largest |c_ij| set to zero."""
    top = np.argsort(-np.abs(C), axis=1)[:, :r]
    residual = C.copy()
    np.put_along_axis(residual, top, 0.0, axis=1)
    return residual


def residual_fraction(C: np.ndarray, r: int = 1) -> np.ndarray:
    """||c_i with its top r coordinates zeroed|| / ||c_i||: the share of a neuron that is not its feature."""
    return np.linalg.norm(_residual(C, r), axis=1) / np.linalg.norm(C, axis=1)


def dense_alignment(C: np.ndarray, w_star: np.ndarray, r: int = 1) -> np.ndarray:
    """|cos(residual_i, w*)|, residual_i = c_i with its top r coordinates zeroed: how much of what is left is the
    dense mixture along u = M w* / ||w*|| (in dictionary coordinates u is w* / ||w*||). About sqrt(2 / (pi d))
    for a random residual."""
    residual = _residual(C, r)
    return np.abs(residual @ w_star) / (np.linalg.norm(residual, axis=1) * np.linalg.norm(w_star))


def row_cosines(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) for each pair of rows."""
    return np.sum(A * B, axis=1) / (np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1))


def decomposition(W_clean: np.ndarray, W_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The principle's split w_i = beta_i w_i' + v_i with v_i orthogonal to w_i': beta_i = <w_i, w_i'> / ||w_i'||^2
    (w = clean, w' = adversarially trained weights). Returns beta (m,) and V = W_clean - diag(beta) W_adv."""
    beta = np.sum(W_clean * W_adv, axis=1) / np.sum(W_adv * W_adv, axis=1)
    return beta, W_clean - beta[:, None] * W_adv


def principle(W_init: np.ndarray, W_clean: np.ndarray, W_adv: np.ndarray) -> dict[str, np.ndarray]:
    """The per-neuron checks of the principle (spec section 3): cos(w, w'), cos(w, w0), cos(w', w0), beta and
    ||beta w'|| / ||v|| (above 1: the clean neuron is mostly its purified self)."""
    beta, V = decomposition(W_clean, W_adv)
    return {"cos_clean_adv": row_cosines(W_clean, W_adv), "cos_clean_init": row_cosines(W_clean, W_init),
            "cos_adv_init": row_cosines(W_adv, W_init), "beta": beta,
            "ratio": np.abs(beta) * np.linalg.norm(W_adv, axis=1) / np.linalg.norm(V, axis=1)}


def removed_direction(W_clean: np.ndarray, W_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top right singular vector of V = W_clean - diag(beta) W_adv (the part adversarial training removed) and
    the singular values of V. Feature purification predicts V close to rank one along u = M w* / ||w*||."""
    _, sigma, vt = np.linalg.svd(decomposition(W_clean, W_adv)[1], full_matrices=False)
    return vt[0], sigma


def weight_metrics(W: np.ndarray, data: SparseCoding) -> dict[str, float]:
    """Medians over the alive neurons of purity, residual fraction and dense alignment."""
    C = coefficients(W[alive(W)], data.M)
    return {"purity": float(np.median(purity(C))), "residual": float(np.median(residual_fraction(C))),
            "dense_alignment": float(np.median(dense_alignment(C, data.w_star)))}


def comparison_metrics(W_init: np.ndarray, W_clean: np.ndarray, W_adv: np.ndarray,
                       data: SparseCoding) -> dict[str, float]:
    """The principle checks as medians over the neurons alive in both W_clean and W_adv, and |cos(top singular
    direction of the removed part, u)| with the top singular value's share of the spectrum."""
    keep = alive(W_clean) & alive(W_adv)
    checks = principle(W_init[keep], W_clean[keep], W_adv[keep])
    direction, sigma = removed_direction(W_clean[keep], W_adv[keep])
    return {**{name: float(np.median(value)) for name, value in checks.items()},
            "removed_alignment": float(abs(direction @ data.dense_direction)),
            "removed_top_share": float(sigma[0] / sigma.sum())}


def effective_rank(A: np.ndarray) -> float:
    """The participation ratio (sum sigma^2)^2 / sum sigma^4 of A's singular values: 1 for a rank-one matrix,
    min(A.shape) when all singular values are equal."""
    return _participation_ratio(_energy(A))


def _energy(A: np.ndarray) -> np.ndarray:
    """The squared singular values of A, largest first."""
    return np.linalg.svd(A, compute_uv=False) ** 2


def _participation_ratio(energy: np.ndarray) -> float:
    return float(energy.sum() ** 2 / np.sum(energy ** 2))


def layer_change(W_init: np.ndarray, W_clean: np.ndarray, W_adv: np.ndarray,
                 seed: int = 0) -> dict[str, float | np.ndarray]:
    """The principle's checks for one layer of a deep network (spec section 5, the image-scale imitation): each row
    is a unit's incoming weights (a conv filter flattened). Medians of cos(w_clean, w_adv), cos(w_clean, w_init),
    cos(w_adv, w_init) and of ||beta w'|| / ||v||; the effective rank of the removed part V (see `decomposition`)
    beside that of the clean phase's own change W_clean - W_init and of a Gaussian matrix of the same shape (the
    rank an unstructured change would have), the top singular value's share of V's energy, and the cumulative
    energy shares of V's and the Gaussian's singular values (the curves the demo draws)."""
    W_init, W_clean, W_adv = (np.asarray(W, np.float64).reshape(len(W), -1) for W in (W_init, W_clean, W_adv))
    checks = principle(W_init, W_clean, W_adv)
    V = decomposition(W_clean, W_adv)[1]
    energy = _energy(V)
    gaussian_energy = _energy(np.random.default_rng(seed).standard_normal(V.shape))
    return {"cos_clean_adv": float(np.median(checks["cos_clean_adv"])),
            "cos_clean_init": float(np.median(checks["cos_clean_init"])),
            "cos_adv_init": float(np.median(checks["cos_adv_init"])),
            "ratio": float(np.median(checks["ratio"])),
            "removed_effective_rank": _participation_ratio(energy),
            "clean_change_effective_rank": effective_rank(W_clean - W_init),
            "gaussian_effective_rank": _participation_ratio(gaussian_energy), "full_rank": min(V.shape),
            "removed_top_energy_share": float(energy[0] / energy.sum()),
            "removed_energy_curve": np.cumsum(energy) / energy.sum(),
            "gaussian_energy_curve": np.cumsum(gaussian_energy) / gaussian_energy.sum()}


def roughness(filters: np.ndarray) -> np.ndarray:
    """Per filter [out, in, k, k]: the energy of the differences between neighbouring taps (both directions) over
    four times the filter's energy. 0 for a constant filter, (k - 1) / k for white noise, 2 (k - 1) / k for a
    checkerboard, at most 1 + cos(pi / k) (the grid Laplacian's top eigenvector)."""
    f = np.asarray(filters, np.float64)
    dx, dy = np.diff(f, axis=-1), np.diff(f, axis=-2)
    return (np.sum(dx ** 2, axis=(1, 2, 3)) + np.sum(dy ** 2, axis=(1, 2, 3))) / (4 * np.sum(f ** 2, axis=(1, 2, 3)))


# ---------------------------------------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Recipe:
    """The training recipe of spec section 2; m and q default to 2 d and 1.33 k / d. Evaluation: PGD with
    `pgd_steps` at radius tau, thresholds frozen on `threshold_samples` clean samples."""

    m: int | None = None
    init: float = 0.1
    q: float | None = None
    lr: float = 0.1
    batch: int = 512
    clean_steps: int = 4000
    adv_steps: int = 2000
    tau: float = 0.3
    norm: str = "2"
    threshold_samples: int = 20000
    pgd_steps: int = 20

    def resolved(self, data: SparseCoding) -> Recipe:
        """This recipe with m and q filled in for `data`."""
        return replace(self, m=self.m or 2 * data.d, q=self.q or 1.33 * data.k / data.d)


@dataclass
class Purification:
    """The outcome of `purify`: the init weights, the clean and the adversarially trained networks (thresholds
    frozen for testing), and the history of records taken during training."""

    recipe: Recipe
    W_init: np.ndarray
    clean: TwoLayerNet
    adv: TwoLayerNet
    history: list[dict] = field(default_factory=list)


def freeze_thresholds(net: TwoLayerNet, data: SparseCoding, q: float, n: int, rng) -> TwoLayerNet:
    """A copy of net with b set by the quantile rule over n fresh clean samples: the network used at test time."""
    frozen = net.copy()
    frozen.set_thresholds(data.sample(n, rng)[0], q)
    return frozen


def purify(data: SparseCoding, recipe: Recipe = Recipe(), seed: int = 0, record_every: int = 0,
           record_size: int = 1000, progress: bool = False) -> Purification:
    """Clean training from a random init, then FGM adversarial training started from the clean weights (spec
    section 2). Every `record_every` steps (0: only at the ends of the phases) the history gets a record: step,
    phase, batch loss, clean and PGD accuracy on `record_size` held-out samples, the weight metrics, and in the
    adversarial phase the comparison with the clean weights (a `comparison_metrics` record)."""
    recipe = recipe.resolved(data)
    rng = np.random.default_rng(seed)
    net = TwoLayerNet.random(recipe.m, data.d, recipe.init, rng)
    W_init = net.W.copy()
    x_fit = data.sample(min(recipe.threshold_samples, 4 * record_size), rng)[0]
    x_rec, y_rec = data.sample(record_size, rng)
    history: list[dict] = []
    W_clean = None
    bar = tqdm(total=recipe.clean_steps + recipe.adv_steps, disable=not progress, desc="feature purification")

    def record(step: int, phase: str, loss: float) -> None:
        frozen = net.copy()
        frozen.set_thresholds(x_fit, recipe.q)
        entry = {"step": step, "phase": phase, "loss": loss, "accuracy": accuracy(frozen, x_rec, y_rec),
                 "robust_accuracy": accuracy(frozen, x_rec, y_rec, recipe.tau, recipe.norm, recipe.pgd_steps),
                 **weight_metrics(net.W, data)}
        if W_clean is not None:
            entry.update(comparison_metrics(W_init, W_clean, net.W, data))
        history.append(entry)

    def phase_hook(phase: str, offset: int, steps: int):
        def on_step(step: int, _net: TwoLayerNet, loss: float) -> None:
            bar.update()
            if step == steps or (record_every and step % record_every == 0):
                record(offset + step, phase, loss)
        return on_step

    record(0, "clean", float("nan"))
    train(net, data, recipe.clean_steps, rng, q=recipe.q, lr=recipe.lr, batch=recipe.batch,
          on_step=phase_hook("clean", 0, recipe.clean_steps))
    clean = freeze_thresholds(net, data, recipe.q, recipe.threshold_samples, rng)
    W_clean = clean.W.copy()
    train(net, data, recipe.adv_steps, rng, q=recipe.q, lr=recipe.lr, batch=recipe.batch, tau=recipe.tau,
          norm=recipe.norm, on_step=phase_hook("adversarial", recipe.clean_steps, recipe.adv_steps))
    bar.close()
    adv = freeze_thresholds(net, data, recipe.q, recipe.threshold_samples, rng)
    return Purification(recipe, W_init, clean, adv, history)


def train_linear(data: SparseCoding, steps: int, rng, *, tau: float = 0.0, norm: str = "2", lr: float = 0.1,
                 batch: int = 512) -> TwoLayerNet:
    """A linear classifier f(x) = <w, x> trained by online SGD on the logistic loss, adversarially at radius tau.
    For a linear f the FGM point x - tau y w / ||w|| (l2) or x - tau y sign(w) (l-inf) is the exact worst case,
    so this minimises the true robust loss: the best a linear classifier can do against tau (spec section 4)."""
    rng = np.random.default_rng(rng)
    net = linear_network(rng.standard_normal(data.d) * 1e-3)
    train(net, data, steps, rng, q=None, lr=lr, batch=batch, tau=tau, norm=norm)
    return net
