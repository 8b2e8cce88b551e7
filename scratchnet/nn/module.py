"""Module: the base of every layer and model, with PyTorch's interface.

A module finds its parameters and submodules by looking at its own attributes (a `Parameter` or a `Module`, also
inside lists, tuples and dicts, nested to any depth), so a layer only has to assign them in `__init__`. Arrays
that are state but not trained (the running statistics of BatchNorm) are registered as buffers; they travel in
`state_dict` with the parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from scratchnet.tensor import FLOAT_DTYPES, Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: it requires a gradient and is returned by `parameters()`."""

    def __init__(self, data, dtype=None):
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


def _members(name: str, value, inside=()) -> Iterator[tuple[str, Module | Parameter]]:
    """(dotted name, member) for each Module and Parameter that an attribute holds, itself or inside lists, tuples
    and dicts: `blocks.2`, `heads.digits.weight`'s `heads.digits`. A container inside itself is walked once."""
    if isinstance(value, Module | Parameter):
        yield name, value
    elif isinstance(value, list | tuple | dict) and id(value) not in inside:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _members(f"{name}.{key}", item, (*inside, id(value)))


class Module:
    """Base class: subclasses set parameters and submodules as attributes in `__init__` and define `forward`."""

    def __init__(self):
        self.training = True
        self._buffers: list[str] = []

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ structure
    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """Keep `array` as state saved in `state_dict` but not trained (e.g. BatchNorm's running mean)."""
        setattr(self, name, array)
        if name not in self._buffers:
            self._buffers.append(name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            for member_name, member in _members(name, value):
                if isinstance(member, Module):
                    yield member_name, member

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every module below it, each once: a layer used twice is one layer, found under the first
        name that reaches it (so its parameters and buffers are listed, and updated, once)."""
        seen = set()

        def walk(module, prefix):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield prefix, module
            for name, child in module.named_children():
                yield from walk(child, f"{prefix}.{name}" if prefix else name)

        return walk(self, prefix)

    def modules(self) -> Iterator[Module]:
        return (module for _, module in self.named_modules())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Each parameter once, under the first name it is found by (one Parameter assigned to two layers ties
        their weights: an optimizer must update it once). A layer's own attributes name a parameter before any
        list or dict that also holds it (`fc.weight`, not `groups.decay.0`), so that such a list renames nothing."""
        seen = set()
        for direct in (True, False):
            for prefix, module in self.named_modules():
                for attribute, value in vars(module).items():
                    if isinstance(value, Parameter) != direct:
                        continue
                    for name, member in _members(attribute, value):
                        if isinstance(member, Parameter) and id(member) not in seen:
                            seen.add(id(member))
                            yield (f"{prefix}.{name}" if prefix else name), member

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name in module._buffers:
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode: bool = True) -> Module:
        """Training mode (BatchNorm uses batch statistics, Dropout drops) for this module and all below it."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def to(self, dtype) -> Module:
        """Cast every float parameter and buffer to `dtype` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for p in self.parameters():
            p.data, p.grad = p.data.astype(dtype), None
        for module in self.modules():
            for name in module._buffers:
                array = getattr(module, name)
                if array.dtype in FLOAT_DTYPES:
                    setattr(module, name, array.astype(dtype))
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy `state` into the parameters and buffers; names, shapes and dtypes must all match, and all are checked
        before anything is copied (a refused state leaves the model as it was)."""
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        missing = sorted((set(own) | set(buffers)) - set(state))
        unexpected = sorted(set(state) - set(own) - set(buffers))
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: missing {missing}, "
                             f"unexpected {unexpected}")
        pairs = [(own[name].data if name in own else buffers[name], np.asarray(value), name)
                 for name, value in state.items()]
        for target, value, name in pairs:
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"state_dict['{name}'] has shape {value.shape} and dtype {value.dtype}, "
                                 f"the model expects {target.shape} and {target.dtype}")
        for target, value, _ in pairs:
            target[...] = value

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Apply modules in order."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer


@contextlib.contextmanager
def eval_mode(model: Module):
    """Run a block with every module of `model` in eval mode, then give each module back its own previous mode
    (`model.train(flag)` would set one flag for all: a BatchNorm frozen inside a training model would thaw)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode
