"""The pre-activation residual block (He et al. 2016, "Identity mappings in deep residual networks"), in the form
of the wide ResNet (Zagoruyko & Komodakis 2016) that the robustness papers train:

    a = relu(bn1(x)),  out = conv2(relu(bn2(conv1(a)))) + shortcut,

where the shortcut is x itself when the shape is kept, a 1x1 convolution of the activated input a when the channel
count changes, and a 1x1 convolution of x itself when only the stride does. The last is how Huang et al.'s
RobustWideResNet (shared/specs/width-depth-and-smoothness.md A2) builds it: their block adds the strided shortcut,
but replaces its input by the activated one only when the channel counts differ. The case arises at a stride-2
stage entry whose stage is half as wide as the one before (W_i = W_{i-1} / 2), as in their narrowed last stages.
"""

from scratchnet.functional import relu
from scratchnet.nn.init import as_rng
from scratchnet.nn.layers import BatchNorm2d, Conv2d, Dropout
from scratchnet.nn.module import Module
from scratchnet.tensor import as_tensor


class PreActBlock(Module):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3, plus the identity or a 1x1 projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0, rng=None):
        super().__init__()
        rng = as_rng(rng)
        self.bn1 = BatchNorm2d(in_channels)
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False, rng=rng)
        projects = in_channels != out_channels or stride != 1
        self.shortcut = Conv2d(in_channels, out_channels, 1, stride, bias=False, rng=rng) if projects else None
        self.shortcut_activated = in_channels != out_channels  # the shortcut reads a, else x
        # a seed of the block's own, drawn last (the convs' initialization is the same with or without dropout),
        # so that the blocks of a network do not all drop the same units
        self.dropout = Dropout(dropout, seed=int(rng.integers(2**31))) if dropout > 0 else None

    def forward(self, x):
        x = as_tensor(x)
        a = relu(self.bn1(x))
        out = relu(self.bn2(self.conv1(a)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        if self.shortcut is None:
            return out + x
        return out + self.shortcut(a if self.shortcut_activated else x)
