"""``ydrop.convert``: the dropout of existing models swapped for guided layers.

On a transformer (``nn.TransformerEncoder``, (B, T, D) activations: units = the D
features, any sequence length) and on a small ResNet-style CNN with a dropout head;
after conversion a Guide finds the layers and a few SGD steps train with a finite
loss. Then the argument handling of ``convert`` itself.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ydrop
from ydrop import ActivationDropout, ExcitationDropout, GuidedDropout, YDrop

D_MODEL, FEEDFORWARD, CLASSES = 16, 32, 3


class SequenceClassifier(nn.Module):
    """(B, T, D_MODEL) -> TransformerEncoder -> mean over tokens -> logits (B, CLASSES)."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(D_MODEL, nhead=2, dim_feedforward=FEEDFORWARD, dropout=0.1,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


class Block(nn.Module):
    """A basic residual block with channel dropout between its convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.drop = nn.Dropout2d(0.2)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(F.relu(self.bn1(self.conv1(x))))
        return F.relu(self.bn2(self.conv2(out)) + x)


class SmallResNet(nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.block1, self.block2 = Block(channels), Block(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(channels, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.block2(self.block1(self.stem(x)))).flatten(1)
        return self.fc(self.head_dropout(features))


def guided(model: nn.Module) -> dict[str, GuidedDropout]:
    return {name: m for name, m in model.named_modules() if isinstance(m, GuidedDropout)}


def train_with_guide(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    guide = ydrop.Guide(model)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    losses = []
    for x, y in batches:
        guide.step(x, y)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ------------------------------------------------------------------ transformer
TRANSFORMER_METHODS = [
    ("ydrop", YDrop, {"warmup_epochs": 0}),
    # Excitation Backprop has no rule for LayerNorm or attention (nor has the paper):
    # the Excitation policy on a transformer takes another score.
    ("excitation", ExcitationDropout, {"score": "gradxact"}),
    ("activation", ActivationDropout, {}),
]


@pytest.mark.parametrize("method, layer_class, kwargs", TRANSFORMER_METHODS, ids=[m[0] for m in TRANSFORMER_METHODS])
def test_a_transformer_encoder_converted_trains_with_a_guide_on_any_sequence_length(method, layer_class, kwargs):
    torch.manual_seed(0)
    model = SequenceClassifier()
    assert ydrop.convert(model, method, **kwargs) is model
    layers = guided(model)
    # Each encoder layer: dropout (inside the feed-forward block), dropout1, dropout2.
    assert sorted(layers) == sorted(f"encoder.layers.{i}.{name}" for i in range(2)
                                    for name in ("dropout", "dropout1", "dropout2"))
    assert all(type(layer) is layer_class for layer in layers.values())
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    assert set(ydrop.Guide(model).layers) == set(layers)
    batches = [(torch.randn(8, tokens, D_MODEL), torch.randint(0, CLASSES, (8,))) for tokens in (5, 9, 5, 12)]
    losses = train_with_guide(model, batches)
    assert all(math.isfinite(loss) for loss in losses)
    if method == "ydrop":  # units = the features, whatever the sequence length
        for name, layer in layers.items():
            expected = FEEDFORWARD if name.endswith(".dropout") else D_MODEL
            assert layer.drop_rate.shape == (expected,), name


def test_excitation_backprop_through_a_transformer_is_refused_by_name():
    torch.manual_seed(0)
    model = ydrop.convert(SequenceClassifier(), "excitation")
    guide = ydrop.Guide(model)
    x, y = torch.randn(4, 5, D_MODEL), torch.randint(0, CLASSES, (4,))
    with pytest.raises(ValueError, match=r"no rule for module 'encoder.layers.0.norm1' \(LayerNorm\).*"
                                         r"register_excitation_rule"):
        guide.step(x, y)


def test_a_converted_transformer_takes_the_dropout_rate_as_base_rate():
    model = ydrop.convert(SequenceClassifier(), "excitation")
    assert {layer.p for layer in guided(model).values()} == {0.1}
    model = ydrop.convert(SequenceClassifier(), "ydrop")
    assert {layer.warmup_p for layer in guided(model).values()} == {0.1}
    model = ydrop.convert(SequenceClassifier(), "ydrop", warmup_p=0.3)  # given: it wins
    assert {layer.warmup_p for layer in guided(model).values()} == {0.3}


def test_include_converts_only_the_matching_modules_of_a_transformer():
    model = ydrop.convert(SequenceClassifier(), "activation", include="encoder.layers.*.dropout1")
    assert sorted(guided(model)) == ["encoder.layers.0.dropout1", "encoder.layers.1.dropout1"]
    assert isinstance(model.encoder.layers[0].dropout2, nn.Dropout)


# The baselines on a transformer: units = the D features as well, so the comparison
# with the guided layers is fair (no whole tokens dropped) and any sequence length runs.
BASELINE_METHODS = [
    ("dropout", ydrop.Dropout),
    ("curriculum", ydrop.CurriculumDropout),
    ("standout", ydrop.StandoutDropout),
    ("information", ydrop.InformationDropout),
]


@pytest.mark.filterwarnings("ignore:.*eval fast path")  # standout's eval (tested below)
@pytest.mark.parametrize("method, layer_class", BASELINE_METHODS, ids=[m[0] for m in BASELINE_METHODS])
def test_a_transformer_encoder_converted_to_a_baseline_trains_on_two_sequence_lengths(method, layer_class):
    torch.manual_seed(0)
    model = ydrop.convert(SequenceClassifier(), method)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, layer_class)}
    assert sorted(layers) == sorted(f"encoder.layers.{i}.{name}" for i in range(2)
                                    for name in ("dropout", "dropout1", "dropout2"))
    assert all(layer.unit_dim is None for layer in layers.values())
    model.train()
    model(torch.randn(2, 3, D_MODEL))  # InformationDropout builds its alpha layers before the optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for tokens in (5, 9, 5, 9):
        x, y = torch.randn(8, tokens, D_MODEL), torch.randint(0, CLASSES, (8,))
        loss = F.cross_entropy(model(x), y) + 1e-3 * ydrop.information_kl(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item())
    if method == "information":  # alpha_layer over the features, trained
        for name, layer in layers.items():
            assert layer.num_units == (FEEDFORWARD if name.endswith(".dropout") else D_MODEL), name
            assert layer.alpha_layer.weight.grad.abs().sum() > 0, name


@pytest.mark.parametrize("method", [m[0] for m in BASELINE_METHODS])
def test_a_channel_dropout_converted_to_a_baseline_drops_whole_channels(method):
    torch.manual_seed(2)
    model = ydrop.convert(nn.Sequential(nn.Dropout1d(0.4), nn.Dropout(0.4)), method)
    assert model[0].unit_dim == 1 and model[1].unit_dim is None
    if method == "curriculum":
        model[0].set_iteration(10**6)  # past the start, where it keeps everything
    x = torch.rand(500, 6, 10) + 0.5  # (B, C, L)
    ratio = model[0].train()(x) / x
    torch.testing.assert_close(ratio, ratio[:, :, :1].expand_as(ratio))
    assert ratio[:, :, 0].unique().numel() > 1


# --------------------------------------------------------------- ResNet-style
RESNET_CASES = [
    ("ydrop", {"warmup_epochs": 0}, None, 3),                # conductance through the residual adds
    ("activation", {}, None, 3),                             # post-ReLU maps and the head
    ("excitation", {}, "head_dropout", 1),                   # the fully connected head, as in the paper
]


@pytest.mark.parametrize("method, kwargs, include, count", RESNET_CASES, ids=[c[0] for c in RESNET_CASES])
def test_a_small_resnet_converted_trains_with_a_guide(method, kwargs, include, count):
    torch.manual_seed(1)
    model = ydrop.convert(SmallResNet(), method, include=include, **kwargs)
    layers = guided(model)
    assert len(layers) == count and set(ydrop.Guide(model).layers) == set(layers)
    if count == 3:  # nn.Dropout2d drops whole channels: its replacement's units are dim 1
        assert model.block1.drop.unit_dim == 1 and model.head_dropout.unit_dim is None
    batches = [(torch.randn(16, 1, 6, 6), torch.randint(0, CLASSES, (16,))) for _ in range(3)]
    losses = train_with_guide(model, batches)
    assert all(math.isfinite(loss) for loss in losses)
    if method == "ydrop":
        assert model.block1.drop.drop_rate.shape == (8,) and model.head_dropout.drop_rate.shape == (8,)


def test_a_converted_channel_dropout_drops_whole_channels():
    torch.manual_seed(2)
    model = ydrop.convert(nn.Sequential(nn.Dropout1d(0.4)), "activation")
    out = model.train()(torch.rand(2000, 6, 10) + 0.5)  # (B, C, L)
    assert model[0].unit_dim == 1
    assert torch.all((out == 0).all(dim=2) | (out != 0).all(dim=2))


# ------------------------------------------------------------ the conversion
def test_each_method_gets_the_rate_in_its_own_terms():
    def one(method, **kwargs):
        return ydrop.convert(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3)), method, **kwargs)[1]

    assert one("excitation").p == 0.3 and one("activation").p == 0.3
    assert one("dropout").p == 0.3
    assert one("ydrop").warmup_p == 0.3
    assert one("curriculum").keep_bar == pytest.approx(0.7)
    assert one("excitation", p=0.2).p == 0.2
    assert isinstance(one("none"), nn.Identity)
    assert isinstance(one("standout"), ydrop.StandoutDropout)  # no rate to take


def test_only_unit_dropouts_are_converted_and_modes_are_kept():
    model = nn.Sequential(nn.Dropout(0.1), nn.AlphaDropout(0.1), nn.Dropout2d(0.1), nn.Dropout3d(0.1))
    model[2].eval()
    ydrop.convert(model, "activation")
    assert isinstance(model[0], ActivationDropout) and isinstance(model[1], nn.AlphaDropout)
    assert isinstance(model[2], ActivationDropout) and isinstance(model[3], ActivationDropout)
    assert model[0].training and not model[2].training
    assert model[2].unit_dim == 1 and model[3].unit_dim == 1
    assert ydrop.convert(nn.Sequential(nn.Dropout2d()), "ydrop", unit_dim=-1)[0].unit_dim == -1


def test_a_subclass_and_a_shared_module_are_converted_at_each_place():
    class MyDropout(nn.Dropout):
        pass

    shared = nn.Dropout(0.2)
    model = nn.Sequential(shared, nn.Linear(3, 3), shared, MyDropout(0.4))
    ydrop.convert(model, "ydrop")
    assert isinstance(model[0], YDrop) and isinstance(model[2], YDrop) and model[0] is not model[2]
    assert isinstance(model[3], YDrop) and model[3].warmup_p == 0.4


def test_a_dropout_model_itself_is_returned_converted():
    layer = ydrop.convert(nn.Dropout(0.25), "excitation")
    assert isinstance(layer, ExcitationDropout) and layer.p == 0.25


def test_a_model_without_dropout_is_returned_unchanged_with_a_warning_saying_why():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.warns(UserWarning, match=r"found no nn.Dropout .* in Sequential, so nothing was replaced; .*F.dropout"):
        assert ydrop.convert(model, "ydrop") is model and isinstance(model[0], nn.Linear)
    converted = ydrop.convert(nn.Sequential(nn.Linear(2, 2), nn.Dropout()), "ydrop")
    with pytest.warns(UserWarning, match=r"nothing was replaced; it holds guided layers already: 1 \(YDrop\)"):
        ydrop.convert(converted, "excitation")  # converting again does not turn Y-Drop into Excitation Dropout


def test_include_as_a_callable_gets_the_name_and_the_module():
    model = nn.Sequential(nn.Dropout(0.1), nn.Dropout(0.5))
    seen = []

    def only_strong(name, module):
        seen.append(name)
        return module.p >= 0.5

    ydrop.convert(model, "excitation", include=only_strong)
    assert seen == ["0", "1"]
    assert isinstance(model[0], nn.Dropout) and isinstance(model[1], ExcitationDropout)


@pytest.mark.parametrize("call, error, message", [
    (lambda m: ydrop.convert("model", "ydrop"), TypeError, r"model must be an nn.Module, got str 'model'"),
    (lambda m: ydrop.convert(m, "saliency"), ValueError, r"dropout method must be one of .*got 'saliency'"),
    (lambda m: ydrop.convert(m, "ydrop", include=3), TypeError,
     r"include must be None, a glob pattern over module names \(str\) or a callable .*got int 3"),
    (lambda m: ydrop.convert(m, "ydrop", include=""), ValueError, r"include must be a non-empty glob pattern"),
    (lambda m: ydrop.convert(m, "ydrop", include="*drop*"), ValueError,
     r"include='\*drop\*' matched none of the model's dropout modules: '0', '2'"),
    (lambda m: ydrop.convert(m, "ydrop", include=lambda name, module: "yes"), TypeError,
     r"include\('0', module\) must return a bool, got str 'yes'"),
    (lambda m: ydrop.convert(m, "ydrop", rate=0.3), TypeError,
     r"converting '0' \(Dropout\(p=0.1.*\)\): dropout method 'ydrop' got unknown keyword argument 'rate'"),
])
def test_bad_arguments_are_named_and_leave_the_model_alone(call, error, message):
    model = nn.Sequential(nn.Dropout(0.1), nn.Linear(2, 2), nn.Dropout(1.0))
    with pytest.raises(error, match=message):
        call(model)
    assert isinstance(model[0], nn.Dropout) and isinstance(model[2], nn.Dropout)


def test_a_rate_the_method_refuses_names_the_module():
    model = nn.Sequential(nn.Dropout(0.1), nn.Dropout(1.0))
    with pytest.raises(ValueError, match=r"converting '1' \(Dropout\(p=1.0.*\)\): p must be a number in \[0, 1\)"):
        ydrop.convert(model, "excitation")
    assert isinstance(model[0], nn.Dropout)  # nothing swapped


def test_a_layer_whose_eval_is_not_the_identity_inside_a_transformer_layer_warns_of_the_fast_path():
    # nn.TransformerEncoderLayer's eval fast path (no autograd) skips its dropout modules.
    with pytest.warns(UserWarning, match=r"encoder\.layers\.0\.dropout1.*set_fastpath_enabled\(False\)"):
        model = ydrop.convert(SequenceClassifier(), "standout")
    x = torch.randn(4, 5, D_MODEL)
    model.eval()
    with torch.no_grad():
        skipped = model(x)
    assert not torch.allclose(skipped, model(x).detach())  # with autograd on, the slow path applies them
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            assert torch.allclose(model(x), model(x.clone().requires_grad_()).detach())  # the advice works
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


@pytest.mark.parametrize("method", ["dropout", "ydrop", "curriculum", "information"])
def test_layers_that_are_the_identity_in_eval_convert_a_transformer_without_a_warning(method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ydrop.convert(SequenceClassifier(), method)
