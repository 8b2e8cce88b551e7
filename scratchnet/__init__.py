"""scratchnet: adversarial-robustness research reimplemented from scratch in NumPy and Numba.

    import scratchnet as sn
    x = sn.Tensor(array, requires_grad=True)     # autograd (tensor.py)
    sn.functional.conv2d(x, w, stride=1)         # differentiable ops (functional/)
    model = sn.nn.models.mnist_cnn()             # modules and models (nn/)
    sn.training.fit(model, loader, test, optimizer=sn.optim.SGD(model.parameters(), lr=0.1))
"""

from scratchnet import backend, data, functional, nn, optim, training
from scratchnet.checkpoint import load, save
from scratchnet.tensor import Tensor, as_tensor, grad, is_grad_enabled, no_grad

__all__ = [
    "Tensor", "as_tensor", "backend", "data", "functional", "grad", "is_grad_enabled", "load", "nn", "no_grad", "optim",
    "save", "training",
]
