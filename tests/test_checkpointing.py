"""Guided layers inside blocks under activation checkpointing (torch.utils.checkpoint).

A checkpointed block runs its forward twice in a training step (the second time in the
backward, with the random state restored). Trained with a Guide, such a model must
train exactly as the same model without checkpointing: the same masks in both runs of
the forward, and Y-Drop's EMA moved once a step. A model that checkpoints in eval mode
too cannot be scored (the passes run it in eval mode): either the scores are the
plain model's or the error says what to change, never silently wrong scores.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

import ydrop
from ydrop import ActivationDropout, ExcitationDropout, Guide, YDrop

METHODS = {
    "ydrop": lambda: YDrop(warmup_epochs=0, elasticity=0.1),  # a large alpha: a second EMA move would show
    "ydrop-gradxact": lambda: YDrop(warmup_epochs=0, elasticity=0.1, score="gradxact"),
    # Ranked off its own input at the step's first forward: not again in the recomputation.
    "ydrop-activation": lambda: YDrop(warmup_epochs=0, elasticity=0.1, score="activation"),
    "excitation": ExcitationDropout,
    "activation": ActivationDropout,
}


class CheckpointedNet(nn.Module):
    """stem -> [ReLU, guided layer, Linear, ReLU] -> head, the bracket checkpointed
    when ``reentrant`` is set (True / False: ``use_reentrant``), in training only
    unless ``in_eval``."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Linear(8, 16)
        self.block = nn.Sequential(nn.ReLU(), layer, nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)
        self.reentrant: bool | None = None
        self.in_eval = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        if self.reentrant is not None and (self.training or self.in_eval):
            h = checkpoint(self.block, h, use_reentrant=self.reentrant)
        else:
            h = self.block(h)
        return self.head(h)


def trained(model: CheckpointedNet, reentrant: bool | None, steps: int = 4, reload_at: int | None = None
            ) -> CheckpointedNet:
    """``steps`` Guide steps; at step ``reload_at`` the model loads its own state
    between ``guide.step`` and the forward."""
    model = copy.deepcopy(model).train()
    model.reentrant = reentrant
    guide = Guide(model)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(5)
    x, y = torch.randn(20, 8), torch.randint(0, 3, (20,))
    for step in range(steps):
        guide.step(x, y)
        if step == reload_at:
            model.load_state_dict(copy.deepcopy(model.state_dict()))
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
@pytest.mark.parametrize("method", list(METHODS))
def test_a_checkpointed_block_trains_as_without_checkpointing(method, reentrant):
    torch.manual_seed(0)
    model = CheckpointedNet(METHODS[method]())
    plain, checkpointed = trained(model, None), trained(model, reentrant)
    for (name, expected), got in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        # The same masks in both runs of the forward, the EMA moved once per step: equal to rounding.
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
    if method.startswith("ydrop"):
        assert not torch.equal(plain.block[1].drop_rate, torch.full((16,), 0.35))  # Y-Drop did run guided


@pytest.mark.parametrize("score_every", [1, 3])
def test_a_state_loaded_between_the_guide_step_and_a_checkpointed_forward_trains_as_without(score_every):
    torch.manual_seed(0)
    model = CheckpointedNet(YDrop(warmup_epochs=0, elasticity=0.1, score_every=score_every))
    plain, checkpointed = trained(model, None, 6, reload_at=2), trained(model, False, 6, reload_at=2)
    for (name, expected), got in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
    # Loading its own state is no step: the same training as without the load.
    for (name, expected), got in zip(trained(model, None, 6).state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)


def sequential_net(score: str) -> nn.Sequential:
    """A plain nn.Sequential, as ``checkpoint_sequential`` takes: the Guide may score
    it inside the training forward (``reuse_forward``), in a checkpointed segment."""
    if score == "excitation":  # Excitation Backprop has rules for ReLU, not Tanh
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ExcitationDropout(), nn.Linear(16, 16), nn.ReLU(),
                             ExcitationDropout(), nn.Linear(16, 3))
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), YDrop(warmup_epochs=0, elasticity=0.1, score=score),
                         nn.Linear(16, 16), nn.Tanh(), YDrop(warmup_epochs=0, elasticity=0.1, score=score),
                         nn.Linear(16, 3))


@pytest.mark.parametrize("reuse_forward", [True, False], ids=["reuse_forward", "separate-pass"])
@pytest.mark.parametrize("segments", [2, 3])
@pytest.mark.parametrize("score", ["conductance", "gradxact", "excitation"])
def test_checkpoint_sequential_trains_as_without_checkpointing(score, segments, reuse_forward):
    torch.manual_seed(0)
    base = sequential_net(score)
    x, y = torch.randn(20, 8), torch.randint(0, 3, (20,))

    def train(segments: int | None) -> nn.Module:
        model = copy.deepcopy(base).train()
        guide = Guide(model, reuse_forward=reuse_forward)
        guide.set_epoch(0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(5)
        for _ in range(4):
            guide.step(x, y)
            logits = model(x) if segments is None else checkpoint_sequential(model, segments, x, use_reentrant=False)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model

    plain, checkpointed = train(None), train(segments)
    for (name, expected), got in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)


def test_ydrop_moves_its_ema_once_a_step_however_often_the_forward_runs():
    alpha = 0.1
    layer = YDrop(warmup_epochs=0, elasticity=alpha, sigma_low=0.0, sigma_high=0.0, num_units=4).train()
    scores = torch.arange(4.0).expand(3, 4)
    for _ in range(3):
        layer.set_scores(scores)  # a step begins; three forwards in it
        layer(torch.ones(2, 4))
        torch.manual_seed(1)
        again = layer(torch.ones(64, 4))
        torch.manual_seed(1)
        assert torch.equal(layer(torch.ones(64, 4)), again)  # the same random state, rates and EMA: the same mask
    g = torch.tensor([0.1, 0.1, 0.6, 0.6])
    torch.testing.assert_close(layer.drop_rate, g + (0.35 - g) * (1 - alpha) ** 3, rtol=0, atol=1e-6)


def eval_checkpointed(reentrant: bool) -> tuple[CheckpointedNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = CheckpointedNet(YDrop()).eval()
    model.reentrant, model.in_eval = reentrant, True
    return model, torch.randn(6, 8), torch.randint(0, 3, (6,))


SCORES = {
    "conductance": ydrop.conductance,
    "gradxact": lambda model, x, y, layers: ydrop.scores.score_kind("gradxact").fn(model, x, y, layers),
    "excitation": ydrop.excitation_backprop,
}


@pytest.mark.parametrize("score", ["conductance", "gradxact"])
def test_gradient_scores_through_a_non_reentrant_checkpoint_in_eval_are_the_plain_models(score):
    model, x, y = eval_checkpointed(reentrant=False)
    got = SCORES[score](model, x, y, [model.block[1]])[model.block[1]]
    model.reentrant = None
    expected = SCORES[score](model, x, y, [model.block[1]])[model.block[1]]
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert expected.abs().sum() > 0


# Conductance and gradxact see through a non-reentrant checkpoint (the test above).
@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
@pytest.mark.parametrize("score, reentrant", [("conductance", True), ("gradxact", True), ("excitation", True),
                                              ("excitation", False)])
def test_a_pass_that_cannot_see_through_a_checkpoint_in_eval_says_what_to_change(score, reentrant):
    model, x, y = eval_checkpointed(reentrant)
    with pytest.raises(ValueError, match=r"checkpoint only in training.*self\.training"):
        SCORES[score](model, x, y, [model.block[1]])
    assert torch.is_grad_enabled()  # the pass put the grad mode back


class FrozenTail(nn.Module):
    def __init__(self, make=YDrop) -> None:
        super().__init__()
        self.fc1, self.drop, self.fc2, self.drop2, self.head = (
            nn.Linear(8, 16), make(), nn.Linear(16, 16), make(), nn.Linear(16, 3))

    def forward(self, x, scale=None):
        h = self.fc2(self.drop(self.fc1(x).relu())).relu()
        with torch.no_grad():  # the scored layer below runs without gradients
            h = self.drop2(h)
        logits = self.head(h)
        return logits if scale is None else logits * scale


def test_a_layer_under_torch_no_grad_inside_the_forward_is_named():
    model = FrozenTail()
    with pytest.raises(ValueError, match=r"scored layer 'drop2' \(YDrop\) runs with gradients turned off"):
        ydrop.conductance(model, torch.randn(4, 8), torch.zeros(4, dtype=torch.long), [model.drop, model.drop2])


class FrozenStem(nn.Module):
    """A scored layer inside a ``torch.no_grad`` block that ends before the next one."""

    def __init__(self, score: str) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), YDrop(warmup_epochs=0, score=score))
        self.drop, self.head = YDrop(warmup_epochs=0, score=score), nn.Linear(16, 3)

    def forward(self, x):
        with torch.no_grad():  # frozen features, a guided layer among them
            h = self.stem(x)
        return self.head(self.drop(h))


@pytest.mark.parametrize("score", ["conductance", "gradxact"])
def test_a_layer_in_a_no_grad_block_that_ends_before_the_next_scored_layer_is_named_too(score):
    """The block's end turns gradients off at the next scored layer, which runs outside
    it: the error names both, and says how to score a layer under torch.no_grad."""
    model = FrozenStem(score).train()
    guide = Guide(model, reuse_forward=False)
    guide.set_epoch(0)
    with pytest.raises(ValueError, match=r"scored layer 'drop' \(YDrop\) runs with gradients turned off inside the "
                                         r"model's forward, or scored layer 'stem.2' \(YDrop\) before it ran inside a "
                                         r"block.*move it out of the block, or give it score='activation'"):
        guide.step(torch.randn(4, 8), torch.zeros(4, dtype=torch.long))
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("score", ["conductance", "gradxact"])
@pytest.mark.parametrize("call", ["forward-arguments", "to_logits"])
def test_the_guide_names_the_layer_as_the_model_does_also_with_forward_arguments(call, score):
    """The Guide scores a model given forward arguments or ``to_logits`` through a
    module of its own around the model: the error names the layer without it."""
    model = FrozenTail(lambda: YDrop(warmup_epochs=0, score=score)).train()
    guide = Guide(model, reuse_forward=False, to_logits=(lambda out: out) if call == "to_logits" else None)
    guide.set_epoch(0)
    kwargs = {"scale": torch.ones(4, 1)} if call == "forward-arguments" else {}
    with pytest.raises(ValueError, match=r"scored layer 'drop2' \(YDrop\) runs with gradients turned off"):
        guide.step(torch.randn(4, 8), torch.zeros(4, dtype=torch.long), **kwargs)
    assert torch.is_grad_enabled() and model.training and all(m.training for m in model.modules())


class GradientsOffAbove(nn.Module):
    """A scored layer below a block that runs without gradients in an eval forward:
    checkpointed with ``use_reentrant=True`` in eval mode too, or under torch.no_grad."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.stem, self.drop, self.head = nn.Linear(8, 16), ExcitationDropout(), nn.Linear(16, 3)
        self.block = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.how = how

    def forward(self, x):
        h = self.drop(self.stem(x).relu())
        if self.how == "reentrant":
            return self.head(checkpoint(self.block, h, use_reentrant=True))
        with torch.no_grad():
            return self.head(self.block(h))


@pytest.mark.parametrize("how", ["reentrant", "no_grad"])
def test_excitation_backprop_through_a_block_without_gradients_says_what_to_change(how):
    """P cannot cross the block: torch's own error (reentrant: "incompatible with
    .grad()") or, under torch.no_grad, silently uniform p_EB, before; now the block is named."""
    torch.manual_seed(0)
    model = GradientsOffAbove(how).eval()
    with pytest.raises(ValueError, match=r"module 'block\.0' \(Linear\), between a scored layer and the logits, runs "
                                         r"with gradients turned off.*checkpoint only in training"):
        ydrop.excitation_backprop(model, torch.randn(6, 8), torch.randint(0, 3, (6,)), [model.drop])
    assert torch.is_grad_enabled() and not any(m.training for m in model.modules())


class CheckpointedEncoder(nn.Module):
    """Two nn.TransformerEncoderLayer, each checkpointed (non-reentrant) in training
    only, as Hugging Face models do, with a padding mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
                                    for _ in range(2))
        self.head = nn.Linear(16, 3)
        self.checkpointed = False

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            if self.checkpointed and self.training:
                h = checkpoint(block, h, None, src_key_padding_mask, use_reentrant=False)
            else:
                h = block(h, src_key_padding_mask=src_key_padding_mask)
        return self.head(h.mean(dim=1))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("score", ["conductance", "gradxact"])
def test_a_converted_transformer_with_checkpointed_blocks_trains_as_without(score):
    torch.manual_seed(0)
    base = CheckpointedEncoder()
    x, y = torch.randn(16, 5, 6), torch.randint(0, 3, (16,))
    mask = torch.zeros(16, 5, dtype=torch.bool)
    mask[::2, -1] = True

    def train(checkpointed: bool) -> nn.Module:
        model = ydrop.convert(copy.deepcopy(base), "ydrop", warmup_epochs=0, elasticity=0.1, score=score)
        model.checkpointed = checkpointed
        guide = Guide(model.train())
        guide.set_epoch(0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        torch.manual_seed(3)
        for _ in range(3):
            guide.step(x, y, src_key_padding_mask=mask)
            loss = F.cross_entropy(model(x, src_key_padding_mask=mask), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model

    plain, checkpointed = train(False), train(True)
    assert sum(isinstance(m, YDrop) for m in plain.modules()) == 6  # three dropouts per encoder layer
    for (name, expected), got in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
