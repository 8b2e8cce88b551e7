"""Elementwise arithmetic and math, each forward with its vector-Jacobian products beside it.

Binary ops broadcast like NumPy; `unbroadcast` sums a gradient back to the shape of its operand.
"""

import numpy as np

from scratchnet.tensor import FLOAT_DTYPES, Tensor, unbroadcast


def raw(value):
    """The array inside a Tensor, or the value itself (for arguments that are never differentiated)."""
    return value.data if isinstance(value, Tensor) else value


def _constant(value, other: Tensor) -> Tensor:
    """A copy of the constant `value` in the dtype of the float Tensor `other`, or in its own dtype (Python floats
    float32)."""
    return Tensor(np.array(Tensor(value, dtype=other.dtype if other.dtype in FLOAT_DTYPES else None).data))


def operands(a, b, op: str, broadcast: bool = True) -> tuple[Tensor, Tensor]:
    """`a` and `b` as Tensors of one dtype that (if `broadcast`) broadcast together.

    A Python number or array takes the dtype of the Tensor it meets (so `x * 0.5` stays float32); met by an
    integer Tensor it keeps its own, a Python float being float32 (`pixels / 255.0` is float32, as in PyTorch); an
    integer Tensor meeting a float Tensor is cast to the float dtype; float32 meeting float64 is an error, since a
    silent promotion would hide a precision bug.
    """
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: needs at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    # a constant is copied: the backward reads it later, and the caller may have changed their array by then
    if not isinstance(a, Tensor):
        a = _constant(a, b)
    if not isinstance(b, Tensor):
        b = _constant(b, a)
    a_float, b_float = a.dtype in FLOAT_DTYPES, b.dtype in FLOAT_DTYPES
    if a_float and b_float and a.dtype != b.dtype:
        raise TypeError(f"{op}: operands have dtypes {a.dtype} and {b.dtype}; cast one of them first")
    if a_float and not b_float:
        b = Tensor(b.data, dtype=a.dtype)
    elif b_float and not a_float:
        a = Tensor(a.data, dtype=b.dtype)
    if broadcast:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None
    return a, b


def add(a, b) -> Tensor:
    a, b = operands(a, b, "add")
    return Tensor.from_op(
        a.data + b.data,
        [(a, lambda g: unbroadcast(g, a.shape)), (b, lambda g: unbroadcast(g, b.shape))],
        "add",
    )


def sub(a, b) -> Tensor:
    a, b = operands(a, b, "sub")
    return Tensor.from_op(
        a.data - b.data,
        [(a, lambda g: unbroadcast(g, a.shape)), (b, lambda g: unbroadcast(-g, b.shape))],
        "sub",
    )


def mul(a, b) -> Tensor:
    a, b = operands(a, b, "mul")
    return Tensor.from_op(
        a.data * b.data,
        [(a, lambda g: unbroadcast(g * b.data, a.shape)), (b, lambda g: unbroadcast(g * a.data, b.shape))],
        "mul",
    )


def div(a, b) -> Tensor:
    """a / b; integers divide to float32, as in PyTorch (NumPy would give float64)."""
    a, b = operands(a, b, "div")
    if a.dtype not in FLOAT_DTYPES:  # then neither is a float
        a, b = Tensor(a.data, dtype=np.float32), Tensor(b.data, dtype=np.float32)
    out = a.data / b.data
    return Tensor.from_op(
        out,
        [(a, lambda g: unbroadcast(g / b.data, a.shape)), (b, lambda g: unbroadcast(-g * out / b.data, b.shape))],
        "div",
    )


def pow(a, b) -> Tensor:  # noqa: A001 - the op's name
    """a ** b. d/da = b a^(b-1), 0 where b = 0 (a^0 = 1 is constant, also at a = 0, where a^-1 is infinite);
    d/db = a^b log a, taken as 0 where a <= 0 (a^b is not smooth in b there)."""
    a, b = operands(a, b, "pow")
    out = a.data**b.data

    def vjp_a(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(b.data == 0, 0, b.data * a.data ** (b.data - 1))
        return unbroadcast(g * slope.astype(out.dtype, copy=False), a.shape)

    def vjp_b(g):
        log_a = np.log(np.where(a.data > 0, a.data, 1))
        return unbroadcast(g * out * log_a, b.shape)

    return Tensor.from_op(out, [(a, vjp_a), (b, vjp_b)], "pow")


def neg(x: Tensor) -> Tensor:
    return Tensor.from_op(-x.data, [(x, lambda g: -g)], "neg")


def exp(x: Tensor) -> Tensor:
    out = np.exp(x.data)
    return Tensor.from_op(out, [(x, lambda g: g * out)], "exp")


def log(x: Tensor) -> Tensor:
    return Tensor.from_op(np.log(x.data), [(x, lambda g: g / x.data)], "log")


def sqrt(x: Tensor) -> Tensor:
    out = np.sqrt(x.data)
    return Tensor.from_op(out, [(x, lambda g: g / (2 * out))], "sqrt")


def abs(x: Tensor) -> Tensor:  # noqa: A001 - the op's name
    """|x|, with the subgradient 0 at x = 0."""
    return Tensor.from_op(np.abs(x.data), [(x, lambda g: g * np.sign(x.data))], "abs")


def _select(a, b, a_wins: np.ndarray, op: str, out: np.ndarray) -> Tensor:
    """Shared backward of maximum and minimum: the gradient goes to the winner; a tie splits it in half."""
    tie = a.data == b.data
    share_a = np.where(tie, 0.5, a_wins).astype(out.dtype)
    return Tensor.from_op(
        out,
        [(a, lambda g: unbroadcast(g * share_a, a.shape)), (b, lambda g: unbroadcast(g * (1 - share_a), b.shape))],
        op,
    )


def maximum(a, b) -> Tensor:
    a, b = operands(a, b, "maximum")
    return _select(a, b, a.data > b.data, "maximum", np.maximum(a.data, b.data))


def minimum(a, b) -> Tensor:
    a, b = operands(a, b, "minimum")
    return _select(a, b, a.data < b.data, "minimum", np.minimum(a.data, b.data))


def clip(x: Tensor, low=None, high=None) -> Tensor:
    """x clamped to [low, high] (NumPy-broadcastable bounds, not differentiated); gradient 1 inside, 0 outside."""
    low = -np.inf if low is None else np.asarray(raw(low), dtype=x.dtype)
    high = np.inf if high is None else np.asarray(raw(high), dtype=x.dtype)
    try:
        fits = np.broadcast_shapes(x.shape, np.shape(low), np.shape(high)) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"clip: low {np.shape(low)} and high {np.shape(high)} must broadcast to x's shape {x.shape}")
    if np.any(low > high):
        raise ValueError("clip: low must be <= high")
    inside = (x.data >= low) & (x.data <= high)
    return Tensor.from_op(np.clip(x.data, low, high), [(x, lambda g: g * inside)], "clip")


def where(condition, a, b) -> Tensor:
    """a where `condition` holds, else b (condition: a bool array or Tensor, not differentiated; copied, since
    the backward reads it)."""
    condition = np.array(raw(condition))
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
    a, b = operands(a, b, "where")
    out = np.where(condition, a.data, b.data)
    return Tensor.from_op(
        out,
        [
            (a, lambda g: unbroadcast(np.where(condition, g, 0), a.shape)),
            (b, lambda g: unbroadcast(np.where(condition, 0, g), b.shape)),
        ],
        "where",
    )


def _compare(np_op, op):
    def compare(a, b) -> Tensor:
        a, b = operands(a, b, op)
        return Tensor(np_op(a.data, b.data))

    compare.__name__ = op
    compare.__doc__ = f"Elementwise `{np_op.__name__}` as a boolean Tensor (not differentiable)."
    return compare


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")
