import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advtut.models import AE400, FC, FC10, ImageCNN, MnistCNN

MODELS = [
    (lambda: FC10(), (2, 1, 28, 28)),
    (lambda: FC((5, 4)), (2, 1, 28, 28)),
    (lambda: AE400(hidden=7), (2, 1, 28, 28)),
    (lambda: MnistCNN(), (2, 1, 28, 28)),
    (lambda: ImageCNN(), (2, 3, 32, 32)),
]


@pytest.mark.parametrize("make, shape", MODELS)
def test_forward_equals_the_logits_of_activations_in_layer_order(make, shape):
    model = make().eval()
    x = torch.rand(shape)
    acts = model.activations(x)
    assert tuple(acts) == tuple(model.layer_names)
    assert list(acts)[-1] == "logits"
    assert torch.equal(model(x), acts["logits"])


def test_mnist_cnn_shapes_and_layers_by_hand():
    model = MnistCNN()
    x = torch.rand(3, 1, 28, 28)
    a = model.activations(x)
    shapes = {k: tuple(v.shape) for k, v in a.items()}
    assert shapes == {"conv1": (3, 32, 28, 28), "relu1": (3, 32, 28, 28), "pool1": (3, 32, 14, 14),
                      "conv2": (3, 64, 14, 14), "relu2": (3, 64, 14, 14), "pool2": (3, 64, 7, 7),
                      "fc1": (3, 256), "relu3": (3, 256), "logits": (3, 10)}
    torch.testing.assert_close(a["conv1"], F.conv2d(x, model.conv1.weight, model.conv1.bias, padding=2))
    torch.testing.assert_close(a["relu1"], a["conv1"].clamp_min(0))
    torch.testing.assert_close(a["pool1"], F.max_pool2d(a["relu1"], 2))
    torch.testing.assert_close(a["fc1"], a["pool2"].flatten(1) @ model.fc1.weight.T + model.fc1.bias)
    assert sum(p.numel() for p in model.parameters()) == 857_738   # as the docstring says


def test_mnist_cnn_settings():
    model = MnistCNN(n_classes=3, in_channels=2, widths=(4, 6), hidden=8, image_size=32)
    a = model.activations(torch.rand(2, 2, 32, 32))
    assert a["pool2"].shape == (2, 6, 8, 8) and a["logits"].shape == (2, 3)


def test_image_cnn_shapes_any_size_and_parameter_count():
    model = ImageCNN()
    assert sum(p.numel() for p in model.parameters()) == 94_117     # as the docstring says
    a = model.activations(torch.rand(2, 3, 64, 48))
    shapes = {k: tuple(v.shape) for k, v in a.items()}
    assert shapes["conv1"] == shapes["bn1"] == shapes["relu1"] == (2, 32, 64, 48)
    assert shapes["pool1"] == (2, 32, 32, 24) and shapes["pool2"] == (2, 64, 16, 12)
    assert shapes["pool3"] == (2, 128, 8, 6)
    assert shapes["avgpool"] == (2, 128) and shapes["logits"] == (2, 5)
    torch.testing.assert_close(a["avgpool"], a["pool3"].mean((2, 3)))
    small = ImageCNN(n_classes=7, in_channels=1, widths=(4, 8))
    assert small.layer_names == ("conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
                                 "avgpool", "logits")
    assert small(torch.rand(1, 1, 4, 4)).shape == (1, 7)


def test_activations_take_one_forward_pass():
    # BatchNorm in train mode counts the batches it sees: one per forward pass
    model = ImageCNN(widths=(4, 4)).train()
    model.activations(torch.rand(2, 3, 8, 8))
    assert [int(bn.num_batches_tracked) for bn in model.bns] == [1, 1]


def test_fc_and_ae_activations_by_hand():
    x = torch.rand(2, 1, 28, 28)
    fc = FC((5, 4))
    a = fc.activations(x)
    assert fc.layer_names == ("fc1", "sigmoid1", "fc2", "sigmoid2", "logits")
    torch.testing.assert_close(a["fc1"], fc[1](x.flatten(1)))
    torch.testing.assert_close(a["sigmoid1"], torch.sigmoid(a["fc1"]))
    torch.testing.assert_close(a["sigmoid2"], torch.sigmoid(fc[3](a["sigmoid1"])))
    ae = AE400(hidden=7)
    b = ae.activations(x)
    assert tuple(b) == ("fc1", "sigmoid1", "logits")
    assert torch.equal(b["sigmoid1"], ae.encode(x))        # the encoder alone
    assert FC10().activations(x)["logits"].shape == (2, 10)


def test_fc_models_keep_their_parameter_order_and_init():
    torch.manual_seed(3)
    fc = FC((5, 4), n_inputs=6, n_classes=3)
    torch.manual_seed(3)
    ref = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Sigmoid(), nn.Linear(5, 4), nn.Sigmoid(),
                        nn.Linear(4, 3))
    assert list(fc.state_dict()) == list(ref.state_dict())
    for p, q in zip(fc.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    assert list(AE400().state_dict()) == ["encoder.weight", "encoder.bias", "decoder.weight",
                                          "decoder.bias", "classifier.weight", "classifier.bias"]


@pytest.mark.parametrize("make, x, match", [
    (MnistCNN, torch.rand(3, 28, 28), r"x must have shape \(N, 1, 28, 28\), got \(3, 28, 28\)"),
    (MnistCNN, torch.rand(3, 3, 28, 28), r"x must have shape \(N, 1, 28, 28\), got \(3, 3, 28, 28\)"),
    (ImageCNN, torch.rand(2, 1, 32, 32),
     r"x must have shape \(N, 3, H, W\) with H, W >= 8, got \(2, 1, 32, 32\)"),
    (ImageCNN, torch.rand(2, 3, 32, 4), r"H, W >= 8, got \(2, 3, 32, 4\)"),
])
def test_cnns_check_the_input_shape(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)


@pytest.mark.parametrize("make, kwargs, match", [
    (MnistCNN, {"n_classes": 1}, "n_classes must be at least 2"),
    (MnistCNN, {"widths": (4, 8, 16)}, "widths must give the two"),
    (MnistCNN, {"image_size": 30}, "image_size must be a positive multiple of 4"),
    (MnistCNN, {"hidden": 0}, "hidden must be a positive width"),
    (ImageCNN, {"widths": ()}, r"widths must be positive channel counts, got \(\)"),
    (ImageCNN, {"in_channels": 0}, "in_channels must be at least 1"),
])
def test_cnn_settings_are_checked(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)
