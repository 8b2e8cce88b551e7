"""Small models shared by the papers' experiments: a multilayer perceptron, the MNIST CNN and Madry et al.'s
MNIST network."""

from scratchnet.functional.conv import check_int
from scratchnet.nn.init import as_rng
from scratchnet.nn.layers import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Tanh
from scratchnet.nn.module import Sequential


def mlp(sizes, activation: str = "relu", seed=0) -> Sequential:
    """Linear layers of the given sizes (input first, classes last) with an activation between each pair."""
    sizes = [check_int(n, "sizes[i]", 1) for n in sizes]
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least an input and an output size, got {sizes}")
    activations = {"relu": ReLU, "tanh": Tanh}
    if activation not in activations:
        raise ValueError(f"activation must be one of {sorted(activations)}, got {activation!r}")
    rng = as_rng(seed)
    layers = [Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(n_in, n_out, rng=rng))
        if i < len(sizes) - 2:
            layers.append(activations[activation]())
    return Sequential(*layers)


def mnist_cnn(in_channels: int = 1, num_classes: int = 10, channels=(32, 64), hidden: int = 128,
              image_size: int = 28, dropout: float = 0.0, seed=0) -> Sequential:
    """The small MNIST CNN: conv3x3(32)-ReLU-conv3x3(64)-ReLU-maxpool2-linear(128)-ReLU-linear(10).

    Padding 1 keeps 28x28 through both convolutions, so the second is the 32 -> 64, 3x3, 28x28 convolution that
    the conv benchmark times. `dropout` > 0 adds dropout after the pooling and the hidden layer, its masks seeded
    from `seed` too.
    """
    rng = as_rng(seed)
    c1, c2 = channels
    pooled = image_size // 2
    layers = [
        Conv2d(in_channels, c1, 3, padding=1, rng=rng), ReLU(),
        Conv2d(c1, c2, 3, padding=1, rng=rng), ReLU(),
        MaxPool2d(2), Flatten(),
    ]
    if dropout > 0:
        layers.append(Dropout(dropout, seed=int(rng.integers(2**63))))
    layers += [Linear(c2 * pooled * pooled, hidden, rng=rng), ReLU()]
    if dropout > 0:
        layers.append(Dropout(dropout, seed=int(rng.integers(2**63))))
    layers.append(Linear(hidden, num_classes, rng=rng))
    return Sequential(*layers)


def madry_mnist_cnn(num_classes: int = 10, seed=0) -> Sequential:
    """Madry et al. (2018)'s MNIST network: conv5x5(32)-ReLU-maxpool2-conv5x5(64)-ReLU-maxpool2-linear(1024)-ReLU-
    linear(10), 3.27M parameters.

    Pooling after each convolution makes it cheaper than `mnist_cnn` per image (about 14M multiply-adds against
    16M) while its 1024-wide hidden layer gives it twice the parameters: the capacity that Madry et al. (Section 4)
    found adversarial training to need.
    """
    rng = as_rng(seed)
    return Sequential(
        Conv2d(1, 32, 5, padding=2, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 5, padding=2, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
        Linear(64 * 7 * 7, 1024, rng=rng), ReLU(),
        Linear(1024, num_classes, rng=rng),
    )
