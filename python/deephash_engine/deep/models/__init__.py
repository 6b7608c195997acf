"""Backbones with a hash head. A backbone registers itself (:func:`register_backbone`) when its
module is imported below; :data:`MODELS` lists them."""

from .hashing_model import MODELS, HashingModel, build_model, register_backbone
from .pixel_features import PixelFeatures
from .small_cnn import SmallCNN
from .torchvision_backbones import BACKBONES, TorchvisionBackbone

__all__ = ["MODELS", "BACKBONES", "HashingModel", "PixelFeatures", "SmallCNN", "TorchvisionBackbone", "build_model",
           "register_backbone"]
