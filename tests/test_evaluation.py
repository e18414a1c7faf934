import pytest
import torch
from torch import nn

from advtut.evaluation import (
    error_matrix,
    error_rate,
    eval_mode,
    logits,
    model_mode,
    predict,
    require_eval_mode,
    topk_accuracy,
)

# hand-made logits: the "model" is the identity, so x holds the logits themselves
SCORES = torch.tensor([[0.9, 0.5, 0.1, 0.0],    # ranks: 0, 1, 2, 3
                       [0.1, 0.2, 0.3, 0.4],    # ranks: 3, 2, 1, 0
                       [0.0, 1.0, 0.5, 0.2],    # ranks: 1, 2, 3, 0
                       [0.3, 0.1, 0.2, 0.9]])   # ranks: 3, 0, 2, 1
LABELS = torch.tensor([0, 2, 3, 1])             # each label at rank 1, 2, 3, 4


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_topk_and_error_rate_on_hand_made_logits():
    model = nn.Identity()
    assert topk_accuracy(model, SCORES, LABELS, ks=(1, 2, 3, 4)) == {1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0}
    assert topk_accuracy(model, SCORES, LABELS, ks=(1, 2), batch_size=3) == {1: 0.25, 2: 0.5}
    assert error_rate(model, SCORES, LABELS) == 0.75
    assert error_rate(model, SCORES, torch.tensor([0, 3, 1, 3]), batch_size=1) == 0.0
    assert torch.equal(predict(model, SCORES, batch_size=3), torch.tensor([0, 3, 1, 3]))


def test_error_matrix_rows_and_columns():
    models = {"id": nn.Identity(), "neg": _Neg()}
    inputs = {"clean": (SCORES, LABELS), "first": (SCORES[:2], torch.tensor([0, 0]))}
    m = error_matrix(models, inputs)
    assert m == {"clean": {"id": 0.75, "neg": 0.75}, "first": {"id": 0.5, "neg": 0.5}}


class _Neg(nn.Module):
    def forward(self, x):
        return -x


def test_batchnorm_in_train_mode_is_evaluated_in_eval_mode_and_left_untouched():
    model = _bn_model().train()
    x = torch.randn(10, 3)
    bn = model[1]
    mean, count = bn.running_mean.clone(), int(bn.num_batches_tracked)
    with torch.no_grad():
        expected = model.eval()(x)
    model.train()
    torch.testing.assert_close(logits(model, x, batch_size=3), expected)
    assert torch.equal(predict(model, x), expected.argmax(1))
    error_rate(model, x, torch.zeros(10, dtype=torch.long))
    topk_accuracy(model, x, torch.zeros(10, dtype=torch.long), ks=(1,))
    assert predict(model, x[:1]).shape == (1,)       # BatchNorm1d refuses a batch of one in train mode
    assert torch.equal(bn.running_mean, mean) and int(bn.num_batches_tracked) == count
    assert model.training and all(m.training for m in model.modules())


def test_modes_restored_per_module_and_after_errors():
    model = _bn_model().train()
    model[1].eval()                                  # a frozen BatchNorm inside a training model
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model] == [True, False, True, True]
    with pytest.raises(RuntimeError), model_mode(model, training=False):
        raise RuntimeError("boom")
    assert [m.training for m in model] == [True, False, True, True]
    with pytest.raises(ValueError, match="ks must be at most the number of classes 2"):
        topk_accuracy(model, torch.randn(4, 3), torch.zeros(4, dtype=torch.long), ks=(1, 5))
    assert [m.training for m in model] == [True, False, True, True]


def test_inputs_follow_the_models_dtype_and_uint8_pixels_are_scaled():
    model = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[200, 3], [0, 255]], dtype=torch.uint8)
    out = logits(model, x)
    assert out.dtype == torch.float64 and out.device.type == "cpu" and not out.requires_grad
    assert torch.equal(out, (x.float() / 255).double())  # uint8 pixels 0-255 -> [0, 1]
    assert torch.equal(logits(model, x.double()), x.double())  # floats are taken as given


def test_require_eval_mode():
    model = _bn_model()
    with pytest.raises(ValueError, match=r"^the attack needs the model in eval mode \(call model.eval\(\)\); "
                       "it is in train mode, which would change BatchNorm statistics and dropout$"):
        require_eval_mode(model.train(), what="the attack")
    require_eval_mode(model.eval(), what="the attack")
    model[1].train()
    with pytest.raises(ValueError, match="fgsm needs the model in eval mode"):
        require_eval_mode(model, what="fgsm")


@pytest.mark.parametrize("call, match", [
    (lambda m: predict(m, torch.zeros(0, 4)), r"x must hold at least one example, got shape \(0, 4\)"),
    (lambda m: logits(m, SCORES, batch_size=0), "batch_size must be >= 1, got 0"),
    (lambda m: error_rate(m, SCORES, LABELS[:3]), "same number of examples, got 4 and 3"),
    (lambda m: error_rate(m, SCORES, LABELS[:, None]), r"y must have shape \(N,\), got \(4, 1\)"),
    (lambda m: topk_accuracy(m, SCORES, LABELS, ks=(0, 1)), r"ks must be positive integers, got \(0, 1\)"),
    (lambda m: topk_accuracy(m, SCORES, LABELS, ks=()), "ks must be positive integers"),
    (lambda m: topk_accuracy(m, SCORES, LABELS, ks=(1.5,)), "ks must be positive integers"),
    (lambda m: topk_accuracy(m, SCORES, LABELS, ks=(5,)), "at most the number of classes 4"),
])
def test_evaluation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(nn.Identity())
