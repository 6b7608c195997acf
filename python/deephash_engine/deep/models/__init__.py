"""Backbones with a hash head."""

from .hashing_model import MODELS, HashingModel, build_model
from .small_cnn import SmallCNN
from .torchvision_backbones import BACKBONES, TorchvisionBackbone

__all__ = ["MODELS", "BACKBONES", "HashingModel", "SmallCNN", "TorchvisionBackbone", "build_model"]
