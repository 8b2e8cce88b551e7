"""Tensor: a NumPy array that remembers how it was computed, and reverse-mode autodiff over that record.

Every differentiable op (in `scratchnet.functional`) computes its result with NumPy or a kernel and calls
`Tensor.from_op(data, edges)`, where each edge is `(parent, vjp)`: `vjp(g)` maps the gradient of the loss with
respect to the result to the gradient with respect to that parent (a vector-Jacobian product). Keeping one
function per parent, rather than one per op, lets `grad(loss, [x])` skip the work for parents it does not need
(an attack wants d loss / d x, never d loss / d weights).

`backward` visits the graph in reverse topological order, so each node's gradient is complete (summed over
every path) before it is pushed to the node's parents. This is the design of micrograd and MiniTorch with arrays
in place of scalars.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()`."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Within this block ops record no graph: results have `requires_grad=False` and hold no parents."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


def _to_array(data, dtype) -> np.ndarray:
    """NumPy arrays and scalars (what an op on 0-d arrays returns) keep their dtype; Python floats default to
    float32 (as in PyTorch), ints to int64."""
    if isinstance(data, np.ndarray | np.generic):
        data = np.asarray(data)
        return data if dtype is None else data.astype(dtype, copy=False)
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64:
        array = array.astype(np.float32)
    return array


class Tensor:
    """An n-dimensional array with an optional gradient.

    `data` is the NumPy array, `grad` the gradient summed over the `backward()` calls since it was last None (an
    array of the same shape that the tensor owns, so it may be changed in place; or None), `requires_grad` whether
    gradients flow to it. Only float32 and float64 tensors can require gradients.
    """

    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__ instead of NumPy broadcasting

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"requires_grad needs a float32 or float64 tensor, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._edges: tuple = ()
        self._op = ""

    @staticmethod
    def from_op(data: np.ndarray, edges, op: str = "") -> Tensor:
        """The result of an op. `edges` lists `(parent, vjp)`; parents that need no gradient are dropped here."""
        out = Tensor(data)
        if is_grad_enabled():
            out._edges = tuple((parent, vjp) for parent, vjp in edges if parent.requires_grad)
            out.requires_grad = bool(out._edges)
            out._op = op
        return out

    # ------------------------------------------------------------------ array-like properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"requires_grad needs a float32 or float64 tensor, got dtype {self.data.dtype}")
        self.requires_grad = flag
        return self

    def is_leaf(self) -> bool:
        return not self._edges

    def __repr__(self) -> str:
        grad = f", requires_grad=True{', op=' + self._op if self._op else ''}" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    # ------------------------------------------------------------------ autodiff
    def backward(self, grad=None) -> None:
        """Accumulate d self / d leaf into `leaf.grad` for every leaf that requires a gradient.

        `grad` defaults to 1 for a one-element tensor; other shapes must pass it (the vector of the vector-Jacobian
        product).
        """
        order = _topological_order(self)
        leaves = [node for node in order if node.is_leaf() and node.requires_grad]
        for leaf, g in zip(leaves, _backpropagate(order, _seed(self, grad), leaves), strict=True):
            # a copy: g may be a read-only broadcast view, or the very array passed to another leaf
            leaf.grad = np.array(g) if leaf.grad is None else leaf.grad + g

    # ------------------------------------------------------------------ operators (defined in functional)
    def __add__(self, other):
        return _F().add(self, other)

    def __radd__(self, other):
        return _F().add(other, self)

    def __sub__(self, other):
        return _F().sub(self, other)

    def __rsub__(self, other):
        return _F().sub(other, self)

    def __mul__(self, other):
        return _F().mul(self, other)

    def __rmul__(self, other):
        return _F().mul(other, self)

    def __truediv__(self, other):
        return _F().div(self, other)

    def __rtruediv__(self, other):
        return _F().div(other, self)

    def __pow__(self, exponent):
        return _F().pow(self, exponent)

    def __rpow__(self, base):
        return _F().pow(base, self)

    def __matmul__(self, other):
        return _F().matmul(self, other)

    def __rmatmul__(self, other):
        return _F().matmul(other, self)

    def __neg__(self):
        return _F().neg(self)

    def __abs__(self):
        return _F().abs(self)

    def __eq__(self, other):  # noqa: D105 - elementwise, as in NumPy and PyTorch
        return _F().eq(self, other)

    def __ne__(self, other):
        return _F().ne(self, other)

    def __lt__(self, other):
        return _F().lt(self, other)

    def __le__(self, other):
        return _F().le(self, other)

    def __gt__(self, other):
        return _F().gt(self, other)

    def __ge__(self, other):
        return _F().ge(self, other)

    __hash__ = object.__hash__  # tensors are graph nodes: identity, not value, decides equality of keys

    def __getitem__(self, index):
        return _F().getitem(self, index)

    # ------------------------------------------------------------------ method forms of common ops
    def sum(self, axis=None, keepdims=False):
        return _F().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _F().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _F().max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _F().min(self, axis, keepdims)

    def reshape(self, *shape):
        return _F().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape)

    def transpose(self, *axes):
        return _F().transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], tuple | list) else axes)

    @property
    def T(self):
        return _F().transpose(self, None)

    def exp(self):
        return _F().exp(self)

    def log(self):
        return _F().log(self)

    def sqrt(self):
        return _F().sqrt(self)

    def relu(self):
        return _F().relu(self)

    def tanh(self):
        return _F().tanh(self)

    def sigmoid(self):
        return _F().sigmoid(self)

    def flatten(self, start_axis: int = 1):
        return _F().flatten(self, start_axis)

    def argmax(self, axis=None) -> np.ndarray:
        """Indices of the maxima (a NumPy array: not differentiable)."""
        return np.argmax(self.data, axis=axis)


def _F():
    """The ops module. Imported on first use because it imports this file (the arrows point down)."""
    from scratchnet import functional

    return functional


def _seed(output: Tensor, grad) -> np.ndarray:
    if not output.requires_grad:
        raise ValueError("backward() on a tensor that does not require grad: no input requires_grad, or no_grad")
    if grad is None:
        if output.size != 1:
            raise ValueError(f"backward() needs `grad` for a non-scalar output of shape {output.shape}")
        return np.ones_like(output.data)
    # a copy: each backward() gets a fresh seed, so an op that recognizes "the same g" by identity (the l-inf-dist
    # ops compute gx and gw together once per g) cannot mistake a caller's array, changed in place, for the last
    grad = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=output.dtype)
    if grad.shape != output.shape:
        raise ValueError(f"grad must have the output's shape {output.shape}, got {grad.shape}")
    return grad


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every node reachable from `root` through its edges, each after all of its parents (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((parent, False) for parent, _ in node._edges if id(parent) not in visited)
    return order


def _backpropagate(order: list[Tensor], seed: np.ndarray, targets: list[Tensor]) -> list[np.ndarray]:
    """d root / d target for each target, where root = order[-1], contracting with `seed`.

    Only the edges that lead to a target are run.
    """
    root = order[-1]
    wanted = {id(t) for t in targets}
    leads_to_target = {}
    for node in order:  # parents come first, so their flags are ready
        leads_to_target[id(node)] = id(node) in wanted or any(leads_to_target[id(p)] for p, _ in node._edges)

    grads, found = {id(root): seed}, {}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if id(node) in wanted:
            found[id(node)] = g
        for parent, vjp in node._edges:
            if not leads_to_target[id(parent)]:
                continue
            pg = vjp(g)
            if pg.shape != parent.shape:
                raise RuntimeError(f"vjp of op '{node._op}' gave shape {pg.shape} for a parent of {parent.shape}")
            pg = pg.astype(parent.dtype, copy=False)
            grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg
    return [found.get(id(t), np.zeros_like(t.data)) for t in targets]


def grad(output: Tensor, inputs, grad_output=None) -> list[np.ndarray]:
    """d output / d input for each of `inputs`, as NumPy arrays, without touching any `.grad`.

    Only the edges on a path from an input to `output` are differentiated, so asking for the input gradient
    of a loss costs no weight-gradient work. An input that `output` does not depend on gets zeros.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(f"inputs[{i}] must be a Tensor with requires_grad=True")
    # copies: two inputs may share one gradient array, and a sum's is a read-only broadcast view
    return [np.array(g) for g in _backpropagate(_topological_order(output), _seed(output, grad_output), inputs)]


def as_tensor(value, dtype=None) -> Tensor:
    """`value` itself if it is a Tensor (when `dtype` differs, a cast copy cut from the graph, which gets no
    gradient), else a new Tensor without gradient that owns a copy of it: the ops keep their inputs for the
    backward, and the caller may refill an array (a loader's buffer, an attack's iterate) before calling it.
    `Tensor(array)` shares the array instead."""
    if isinstance(value, Tensor):
        return value if dtype is None or value.dtype == dtype else Tensor(value.data, dtype=dtype)
    if isinstance(value, np.ndarray | np.generic):
        value = np.array(value)
    return Tensor(value, dtype=dtype)


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `g` over the axes that NumPy broadcasting added or stretched, so that it has `shape` again."""
    if g.shape == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g
