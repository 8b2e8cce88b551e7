"""The configurable wide ResNet of Huang et al. (2021, "Exploring Architectural Ingredients of Adversarially Robust
Deep Neural Networks", NeurIPS, Section 3; shared/specs/width-depth-and-smoothness.md A2), after their
RobustWideResNet: a WRN (Zagoruyko & Komodakis 2016) whose stages each have their own depth and width.

    stem: conv3x3(in_channels -> base)
    stage i = 1..n: D_i pre-activation basic blocks with base 2^(i-1) W_i channels, the first of stride s_i
                    (strides 1, 2, 2, ...), with a 1x1 shortcut where the channel count or the stride changes
                    (of the block's raw input where only the stride does, as in their code: blocks.py)
    head: BN - ReLU - global average pool - linear(num_classes)

Depth is written dD1-D2-D3 (blocks per stage) and width W1-W2-W3 (widening factor per stage): WRN-34-10 is
d5-5-5 with widths 10-10-10 (channels 16, 160, 320, 640), and the paper's WRN-34-R is d5-5-5 with widths 20-20-8,
wider early and narrower in the last stage. Initialization as in the reference code: every conv weight
N(0, 2 / (k^2 C_out)) (He et al. 2015, fan-out mode), BatchNorm scale 1 and shift 0, the linear layer's weight
PyTorch's default uniform and its bias 0. The global pool makes the network accept any input size.
"""

import numpy as np

from scratchnet import streams
from scratchnet.functional import relu
from scratchnet.functional.conv import check_int
from scratchnet.nn.blocks import PreActBlock
from scratchnet.nn.init import as_rng, kaiming_normal
from scratchnet.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, Linear
from scratchnet.nn.module import Module
from scratchnet.tensor import as_tensor


def _stage_config(depths, widths, base_channels, strides) -> tuple[list, list, list, int]:
    """Checked (depths, widths, strides, base) of a stage configuration, or an error naming the argument."""
    depths, widths = list(depths), list(widths)
    if not depths or len(depths) != len(widths):
        raise ValueError(f"depths and widths must be non-empty and of equal length, got {depths} and {widths}")
    depths = [check_int(d, "depths[i]", 1) for d in depths]
    widths = [check_int(w, "widths[i]", 1) for w in widths]
    base = check_int(base_channels, "base_channels", 1)
    strides = [1] + [2] * (len(depths) - 1) if strides is None else list(strides)
    if len(strides) != len(depths):
        raise ValueError(f"strides must give one stride per stage ({len(depths)}), got {strides}")
    strides = [check_int(s, "strides[i]", 1) for s in strides]
    return depths, widths, strides, base


def stage_channels(widths, base_channels: int = 16) -> list[int]:
    """[C_0, C_1, ..., C_n]: the stem's `base_channels`, then base 2^(i-1) W_i for stage i."""
    return [base_channels] + [base_channels * 2 ** i * w for i, w in enumerate(widths)]


def wide_resnet_parameters(depths=(5, 5, 5), widths=(10, 10, 10), in_channels: int = 3, num_classes: int = 10,
                           base_channels: int = 16, strides=None) -> int:
    """The number of trained parameters of `WideResNet` with these arguments, in closed form (no arrays built):

        stem 9 C_in C_0;  per block  2 a + 9 a b + 2 b + 9 b^2 (+ a b if a != b or stride != 1),
        a -> b its channels (two BatchNorms of 2 values per channel, two 3x3 convs, the 1x1 shortcut);
        head 2 C_n + C_n K + K.
    """
    depths, widths, strides, base = _stage_config(depths, widths, base_channels, strides)
    in_channels = check_int(in_channels, "in_channels", 1)
    num_classes = check_int(num_classes, "num_classes", 1)
    channels = stage_channels(widths, base)
    total = 9 * in_channels * base
    for a, b, depth, stride in zip(channels[:-1], channels[1:], depths, strides, strict=True):
        total += 2 * a + 9 * a * b + 2 * b + 9 * b * b + (a * b if a != b or stride != 1 else 0)
        total += (depth - 1) * (4 * b + 18 * b * b)
    return total + 2 * channels[-1] + channels[-1] * num_classes + num_classes


def _stream(root: int, stage: int, block: int = 0, layer: int = 0) -> np.random.Generator:
    """The generator of one layer, keyed by its place: a layer draws the same weights whatever the depths and
    widths of the other stages, so two configurations built from one seed differ only where they differ in shape
    (paired comparisons, as with common random numbers). Stage 0 is the stem, the last stage + 1 the classifier;
    layer 0 of a block is the block's own generator, its convs are layers 1, 2, 3 (a key of fixed length: [.., 0]
    would otherwise be the block's key with a zero appended, which NumPy seeds alike when the root is below
    2**32)."""
    return streams.generator(root, "layer", stage, block, layer)


def _reference_init(conv: Conv2d, rng: np.random.Generator) -> None:
    """N(0, 2 / (k^2 C_out)), the reference code's conv initialization (He et al. 2015, fan-out mode)."""
    conv.weight.data[...] = kaiming_normal(conv.weight.shape, rng, mode="fan_out")


class WideResNet(Module):
    """WRN with per-stage depths (D_1, ..., D_n) and widening factors (W_1, ..., W_n); see the module docstring.

    `base_channels` is the stem width (16 in the paper; 4 in demos/width_depth.py's scaled-down nets), `strides` the
    first block's stride in each stage (default 1, 2, 2, ...). `rng`: a seed or a Generator; each layer then draws
    from its own stream keyed by its place in the network (`_stream`).
    """

    def __init__(self, depths=(5, 5, 5), widths=(10, 10, 10), num_classes: int = 10, in_channels: int = 3,
                 base_channels: int = 16, strides=None, rng=None):
        super().__init__()
        depths, widths, strides, base = _stage_config(depths, widths, base_channels, strides)
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.num_classes = check_int(num_classes, "num_classes", 1)
        self.depths, self.widths, self.strides = tuple(depths), tuple(widths), tuple(strides)
        root = int(as_rng(rng).integers(2**63))
        channels = stage_channels(widths, base)
        stem = _stream(root, 0)  # for the default init too, which would otherwise draw from the global generator
        self.stem = Conv2d(in_channels, base, 3, 1, padding=1, bias=False, rng=stem)
        _reference_init(self.stem, stem)
        self.blocks = []
        for s, (a, b, depth, stride) in enumerate(zip(channels[:-1], channels[1:], depths, strides, strict=True)):
            for j in range(depth):
                block = PreActBlock(a if j == 0 else b, b, stride if j == 0 else 1, rng=_stream(root, s + 1, j))
                for k, conv in enumerate((block.conv1, block.conv2, block.shortcut)):
                    if conv is not None:
                        _reference_init(conv, _stream(root, s + 1, j, k + 1))
                self.blocks.append(block)
        self.bn = BatchNorm2d(channels[-1])
        self.pool = GlobalAvgPool2d()
        self.fc = Linear(channels[-1], num_classes, rng=_stream(root, len(depths) + 1))
        self.fc.bias.data[...] = 0.0

    def forward(self, x):
        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [N, {self.in_channels}, H, W], got shape {x.shape}")
        out = self.stem(x)
        for block in self.blocks:
            out = block(out)
        return self.fc(self.pool(relu(self.bn(out))))
