"""Plain NumPy definitions of the kernels: the readable oracle that every fast tier is tested against.

One module per family, each with the same function names and signatures as its Numba twin in `kernels/`.
The package also re-exports every reference function, so `reference.conv2d_forward` reads as the definition.
"""

from scratchnet.kernels.reference.activation import relu_backward, relu_forward
from scratchnet.kernels.reference.attack import l2_project, l2_step, linf_project, linf_step
from scratchnet.kernels.reference.conv import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    fold,
    max_pool2d_backward,
    max_pool2d_forward,
    output_size,
    unfold,
)
from scratchnet.kernels.reference.linf_dist import (
    interval_bounds,
    linf_dist_backward,
    linf_dist_forward,
    linf_dist_values,
)
from scratchnet.kernels.reference.lp_dist import lp_dist_backward, lp_dist_forward
from scratchnet.kernels.reference.norms import conv_l1_class_sums, conv_linf_filter_sums

__all__ = [
    "interval_bounds", "linf_dist_backward", "linf_dist_forward", "linf_dist_values", "lp_dist_backward",
    "lp_dist_forward", "conv_l1_class_sums", "conv_linf_filter_sums",
    "avg_pool2d_backward", "avg_pool2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "conv2d_forward", "fold", "l2_project", "l2_step", "linf_project", "linf_step", "max_pool2d_backward",
    "max_pool2d_forward", "output_size", "relu_backward", "relu_forward", "unfold",
]
