"""Bad input raises a ValueError or TypeError that names the offending argument, never a wrong answer."""

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.functional as F
from scratchnet import nn, optim
from scratchnet.tensor import Tensor


def t(*shape, dtype=np.float32):
    return Tensor(np.ones(shape, dtype))


def param(*shape):
    return [nn.Parameter(np.ones(shape, np.float32))]


CASES = {
    "add shapes": (lambda: t(2, 3) + t(4, 3), ValueError, r"shapes \(2, 3\) and \(4, 3\)"),
    "mixed floats": (lambda: t(2) * t(2, dtype=np.float64), TypeError, "float32 and float64"),
    "int requires_grad": (lambda: Tensor(np.ones(2, np.int64), requires_grad=True), TypeError, "requires_grad"),
    "matmul inner": (lambda: t(2, 3) @ t(2, 3), ValueError, "inner dimensions"),
    "linear features": (lambda: F.linear(t(4, 3), t(5, 2)), ValueError, "w expects 2"),
    "linear bias": (lambda: F.linear(t(4, 3), t(5, 3), t(4)), ValueError, "b must have shape"),
    "conv channels": (lambda: F.conv2d(t(1, 3, 8, 8), t(4, 2, 3, 3)), ValueError, "w must be"),
    "conv x dims": (lambda: F.conv2d(t(3, 8, 8), t(4, 3, 3, 3)), ValueError, "x must be 4-D"),
    "conv int x": (lambda: F.conv2d(t(1, 1, 4, 4, dtype=np.int64), t(1, 1, 3, 3)), TypeError, "x must be float"),
    "conv stride": (lambda: F.conv2d(t(1, 1, 8, 8), t(1, 1, 3, 3), stride=0), ValueError, "stride must be >= 1"),
    "conv padding type": (lambda: F.conv2d(t(1, 1, 8, 8), t(1, 1, 3, 3), padding=1.5), TypeError, "padding"),
    "conv too small": (lambda: F.conv2d(t(1, 1, 2, 2), t(1, 1, 3, 3)), ValueError, "does not fit"),
    "pool kernel": (lambda: F.max_pool2d(t(1, 1, 4, 4), 0), ValueError, "kernel_size must be >= 1"),
    "pool padding": (lambda: F.max_pool2d(t(1, 1, 4, 4), 2, padding=2), ValueError, "padding must be at most"),
    "NaN in loss": (lambda: F.cross_entropy(Tensor(np.array([[np.nan, 0.0]])), [0]), ValueError, "logits contains"),
    "inf in mse": (lambda: F.mse(Tensor(np.array([np.inf])), np.zeros(1)), ValueError, "a contains"),
    "label range": (lambda: F.cross_entropy(t(2, 3), np.array([0, 3])), ValueError, r"y must be in \[0, 3\)"),
    "label dtype": (lambda: F.cross_entropy(t(2, 3), np.array([0.0, 1.0])), TypeError, "y must hold integer"),
    "label count": (lambda: F.cross_entropy(t(2, 3), np.array([0])), ValueError, "one label per row"),
    "kl shapes": (lambda: F.kl_div(t(2, 3), t(2, 4)), ValueError, "logits_p"),
    "reduction": (lambda: F.cross_entropy(t(2, 3), np.array([0, 1]), "avg"), ValueError, "reduction"),
    "negative lr": (lambda: optim.SGD(param(2), lr=-0.1), ValueError, "lr must be in"),
    "NaN lr": (lambda: optim.Adam(param(2), lr=float("nan")), ValueError, "lr must be in"),
    "momentum": (lambda: optim.SGD(param(2), lr=0.1, momentum=1.0), ValueError, "momentum"),
    "nesterov": (lambda: optim.SGD(param(2), lr=0.1, nesterov=True), ValueError, "nesterov"),
    "no params": (lambda: optim.SGD([], lr=0.1), ValueError, "params is empty"),
    "dropout p": (lambda: nn.Dropout(1.0), ValueError, "p must be in"),
    "linear size": (lambda: nn.Linear(0, 3), ValueError, "in_features must be >= 1"),
    "bn input": (lambda: nn.BatchNorm2d(3)(t(2, 3)), ValueError, "must have 4 dimensions"),
    "bn batch of one": (lambda: nn.BatchNorm1d(3)(t(1, 3)), ValueError, "more than one value"),
    "bn eps": (lambda: nn.BatchNorm1d(3, eps=-1.0), ValueError, "eps must be a finite number > 0"),
    "bn float64 input, float32 weights": (lambda: nn.BatchNorm1d(3)(t(2, 3, dtype=np.float64)), TypeError,
                                          "x is float64 but weight is float32"),
    "bn integer input": (lambda: nn.BatchNorm1d(3)(t(2, 3, dtype=np.int64)), TypeError, "must be float32"),
    "concatenate floats": (lambda: F.concatenate([t(2), t(2, dtype=np.float64)]), TypeError, "float32"),
    "sequential item": (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "argument 1"),
    "reshape": (lambda: t(2, 3).reshape(4, 2), ValueError, r"cannot reshape a tensor of shape \(2, 3\)"),
    "axis": (lambda: t(2, 3).sum(axis=2), ValueError, "axis 2 is out of range"),
    "backward non-scalar": (lambda: (t(2).requires_grad_() * 2.0).backward(), ValueError, "needs `grad`"),
    "where condition": (lambda: F.where(np.ones(2), t(2), t(2)), TypeError, "condition must be boolean"),
    # these broadcast x up (and the backward failed) or crashed inside NumPy
    "clip bounds broadcast x up": (lambda: F.clip(t(3), np.zeros((2, 3)), 1.0), ValueError, r"clip: low \(2, 3\)"),
    "bn weight length": (lambda: F.batch_norm(t(4, 3), np.zeros(3), np.ones(3), t(4), t(3)), ValueError,
                         r"weight must have shape \(3,\)"),
    "bn running_mean list": (lambda: F.batch_norm(t(4, 3), [0.0] * 3, np.ones(3)), TypeError,
                             "running_mean must be a NumPy array"),
    "transpose axes out of range": (lambda: F.transpose(t(2, 3), (1, 2)), ValueError, "not a permutation"),
    "transpose a 0-d tensor": (lambda: F.transpose(t(), (0,)), ValueError, "not a permutation"),
    "pad pairs": (lambda: F.pad(t(2, 3), [(1, 1)] * 3), ValueError, "pad_width must be one"),
    "kaiming mode": (lambda: nn.init.kaiming_normal((3, 4), mode="fan_avg"), ValueError, "mode must be"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_a_clear_error(case):
    make, error, message = CASES[case]
    with pytest.raises(error, match=message):
        make()


def test_load_state_dict_names_missing_unexpected_and_misshaped_entries():
    model = nn.Linear(3, 2)
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        model.load_state_dict({"weight": state["weight"]})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="state_dict\\['weight'\\] has shape"):
        model.load_state_dict({**state, "weight": np.zeros((3, 2), np.float32)})


def test_fit_refuses_a_missing_optimizer_and_a_plain_array():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="optimizer"):
        sn.training.fit(model, None)
    with pytest.raises(TypeError, match="train must be a BatchLoader"):
        sn.training.fit(model, np.zeros((4, 2)), optimizer=optim.SGD(model.parameters(), lr=0.1))
