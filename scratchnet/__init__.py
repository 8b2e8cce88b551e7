"""scratchnet: adversarial-robustness research reimplemented from scratch in NumPy and Numba.

    import scratchnet as sn
    x = sn.Tensor(array, requires_grad=True)     # autograd (tensor.py)
    sn.functional.conv2d(x, w, stride=1)         # differentiable ops (functional/)
    model = sn.nn.models.mnist_cnn()             # modules and models (nn/)
    sn.training.fit(model, loader, test, optimizer=sn.optim.SGD(model.parameters(), lr=0.1))
    x_adv = sn.attacks.pgd(model, x, y, eps=0.3, steps=40)      # attacks (attacks.py)
    sn.training.fit(model, loader, test, sn.objectives.TRADES(eps=0.3), optimizer)   # adversarial training
    sn.norms.conv_linf_norm(w, stride, padding, input_size)      # exact operator norms (norms.py)
"""

from scratchnet import (
    attacks,
    backend,
    certify,
    checkpoint,
    data,
    functional,
    linf_dist_training,
    lipschitz,
    memory,
    nn,
    norms,
    objectives,
    optim,
    purification,
    regularizers,
    smoothness,
    streams,
    training,
    weight_average,
)
from scratchnet.checkpoint import load, save
from scratchnet.tensor import Tensor, as_tensor, grad, is_grad_enabled, no_grad

__all__ = [
    "Tensor", "as_tensor", "attacks", "backend", "data", "functional", "grad", "is_grad_enabled", "load", "nn",
    "no_grad", "norms", "objectives", "optim", "regularizers", "save", "training",
    "certify", "checkpoint", "linf_dist_training", "lipschitz", "memory", "purification", "smoothness", "streams",
    "weight_average",
]
# scratchnet.linf_dist_gpu is imported on its own: it needs numba.cuda, which importing scratchnet never does
