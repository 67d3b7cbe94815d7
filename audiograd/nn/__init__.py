"""Neural-network building blocks: functional ops, Module and layers, weight norm."""
from . import functional, utils
from .layers import (ELU, GELU, AvgPool1d, AvgPool2d, Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, Dropout,
                     GroupNorm, Identity, LayerNorm, LeakyReLU, Linear, MaxPool1d, MaxPool2d, ReLU, Sigmoid, SiLU, Snake,
                     SnakeBeta, Softmax, Tanh, Upsample)
from .module import Module, ModuleList, Parameter, Sequential
