"""Backbone + hash head: shapes, initialisation, learning-rate groups, optional torchvision."""

import pytest
import torch

from deephash_engine.deep.losses import GreedyHashLoss
from deephash_engine.deep.models import build_model
from deephash_engine.deep.trainer import build_optimizer


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_small_cnn_outputs_nbits(channels, size):
    model = build_model("small_cnn", 24, in_channels=channels, image_size=size)
    out = model(torch.randn(5, channels, size, size))
    assert out.shape == (5, 24)
    assert float(model.hash_layer.bias.detach().abs().sum()) == 0.0
    assert 0.005 < float(model.hash_layer.weight.detach().std()) < 0.02  # N(0, 0.01)


def test_param_groups_give_the_head_and_loss_classifier_a_larger_lr():
    model = build_model("small_cnn", 16)
    loss = GreedyHashLoss(16, num_classes=10)
    opt = build_optimizer(model, loss, "sgd", lr=0.01, head_lr_mult=10.0)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["backbone"]["lr"] == pytest.approx(0.01)
    assert by_name["head"]["lr"] == pytest.approx(0.1)
    head_ids = {id(p) for p in by_name["head"]["params"]}
    assert id(model.hash_layer.weight) in head_ids
    assert id(loss.classifier.weight) in head_ids  # the classifier is optimised (DHP PR#32's bug)
    all_ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(all_ids) == len(set(all_ids)) == len(list(model.parameters())) + 1


def test_unknown_model_and_bad_bits_are_named():
    with pytest.raises(ValueError, match="name: expected one of"):
        build_model("lenet", 16)
    with pytest.raises(ValueError, match="nbits"):
        build_model("small_cnn", 0)


def test_torchvision_backbones_fail_clearly_or_build_without_download(tmp_path):
    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(ImportError, match="small_cnn"):
            build_model("resnet18", 16, in_channels=3, image_size=224)
        return
    model = build_model("resnet18", 16, in_channels=3, image_size=64)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 16)
    weights = tmp_path / "r18.pt"
    torch.save(model.backbone.body.state_dict(), weights)
    again = build_model("resnet18", 16, in_channels=3, image_size=64, weights=weights)
    assert torch.equal(again.backbone.body.conv1.weight, model.backbone.body.conv1.weight)
