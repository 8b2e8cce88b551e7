"""Modules: the base class, the standard layers, residual blocks, and the models of the papers."""

from scratchnet.nn import init, models
from scratchnet.nn.blocks import PreActBlock
from scratchnet.nn.init import manual_seed
from scratchnet.nn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from scratchnet.nn.linf_dist import LinfDist, LinfDistNet, LinfDistNetMLP, infinite_p, set_p
from scratchnet.nn.module import Module, Parameter, Sequential, eval_mode
from scratchnet.nn.wide_resnet import WideResNet, wide_resnet_parameters

__all__ = [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "GlobalAvgPool2d", "Identity",
    "Linear", "MaxPool2d", "Module", "Parameter", "PreActBlock", "ReLU", "Sequential", "Sigmoid", "Tanh", "init",
    "eval_mode", "manual_seed", "models",
    "LinfDist", "LinfDistNet", "LinfDistNetMLP", "infinite_p", "set_p",
    "WideResNet", "wide_resnet_parameters",
]
