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


def test_small_cnn_relu_after_pool_matches_the_textbook_order():
    """ReLU after max-pool (the faster order) gives the outputs and gradients of conv-BN-ReLU-pool."""
    from torch import nn

    torch.manual_seed(3)
    model = build_model("small_cnn", 16).double()
    f = model.backbone.features
    textbook = nn.Sequential(f[0], f[1], nn.ReLU(), nn.MaxPool2d(2), f[4], f[5], nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(6, 1, 28, 28, dtype=torch.float64)
    w = torch.randn(6, 64, 7, 7, dtype=torch.float64)

    def grads(net):
        for p in net.parameters():
            p.grad = None
        xx = x.clone().requires_grad_(True)
        out = net(xx)
        (out * w).sum().backward()
        return out.detach(), xx.grad, [p.grad.clone() for p in net.parameters()]

    out_a, gx_a, gp_a = grads(f)
    out_b, gx_b, gp_b = grads(textbook)
    assert torch.allclose(out_a, out_b, rtol=0, atol=1e-12)
    assert torch.allclose(gx_a, gx_b, rtol=0, atol=1e-12)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-10) for a, b in zip(gp_a, gp_b))
    assert isinstance(f[2], nn.MaxPool2d) and isinstance(f[3], nn.ReLU)  # the order this test is about


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
