"""A researcher's own models: forward arguments beyond the batch (padding masks), outputs
that are not bare logits (tuples, HuggingFace-style dicts), scoring under torch.no_grad."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ydrop

B, T, VOCAB, D, CLASSES = 6, 5, 30, 8, 3


class Encoder(nn.Module):
    """Token ids + padding mask -> logits; mean pool over the tokens that are not padding."""

    def __init__(self, output="tensor"):
        super().__init__()
        torch.manual_seed(0)
        self.output = output
        self.emb = nn.Embedding(VOCAB, D)
        layer = nn.TransformerEncoderLayer(D, 2, 16, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(D, CLASSES)
        self.seen_masks = []  # the padding mask of every forward

    def forward(self, ids, src_key_padding_mask=None):
        self.seen_masks.append(src_key_padding_mask)
        h = self.enc(self.emb(ids), src_key_padding_mask=src_key_padding_mask)
        keep = torch.ones_like(ids, dtype=h.dtype) if src_key_padding_mask is None else (~src_key_padding_mask).to(h)
        logits = self.head(self.drop((h * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)))
        if self.output == "dict":
            return {"logits": logits, "hidden": h}
        return (logits, h) if self.output == "tuple" else logits


class Bound(nn.Module):
    """The reference: the mask bound by hand (the whole batch, no row subsets)."""

    def __init__(self, model, mask, pick=lambda out: out):
        super().__init__()
        self.model, self.mask, self.pick = model, mask, pick

    def forward(self, ids):
        return self.pick(self.model(ids, src_key_padding_mask=self.mask))


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (B, T), generator=g)
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[: B // 2, 3:] = True
    return ids, pad, torch.randint(0, CLASSES, (B,), generator=g)


@pytest.mark.parametrize("output", ["tensor", "dict", "tuple"])
def test_guide_step_scores_with_the_forward_kwargs_and_to_logits(output):
    ids, pad, y = batch()
    model = ydrop.convert(Encoder(output), "excitation", score="gradxact", include="drop")
    pick = {"tensor": None, "dict": lambda out: out["logits"], "tuple": lambda out: out[0]}[output]
    guide = ydrop.Guide(model, to_logits=pick)
    given = guide.step(ids, y, src_key_padding_mask=pad)
    assert all(mask is pad or torch.equal(mask, pad[: mask.shape[0]]) for mask in model.seen_masks)
    reference = ydrop.gradxact(Bound(model, pad, pick or (lambda out: out)), ids, y, ["model.drop"])
    torch.testing.assert_close(given["drop"], next(iter(reference.values())))
    without_mask = ydrop.gradxact(Bound(model, None, pick or (lambda out: out)), ids, y, ["model.drop"])
    assert not torch.allclose(given["drop"], next(iter(without_mask.values())))  # the mask matters here
    model.train()
    model(ids, src_key_padding_mask=pad)  # the training forward takes the scores


class Scaled(nn.Module):
    """Features times a per-sample scale (a keyword), then an MLP head in an nn.Sequential:
    conductance's chain pass with a shared zero baseline is reachable from the head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Linear(4, 8)
        self.head = nn.Sequential(nn.ReLU(), ydrop.YDrop(warmup_epochs=0), nn.Linear(8, 8), nn.ReLU(),
                                  ydrop.YDrop(warmup_epochs=0), nn.Linear(8, CLASSES))

    def forward(self, x, scale):
        return self.head(self.stem(x) * scale.unsqueeze(1) + scale.unsqueeze(1))


def test_conductance_with_a_per_sample_keyword_matches_sample_by_sample():
    model = Scaled()
    x, scale, y = torch.randn(B, 4), torch.rand(B) + 0.5, torch.randint(0, CLASSES, (B,))
    layers = [model.head[1], model.head[4]]
    guide = ydrop.Guide(model)
    scored = {}
    originals = [layer.set_scores for layer in layers]
    for layer, original in zip(layers, originals):
        layer.set_scores = lambda s, layer=layer, original=original: (scored.__setitem__(layer, s), original(s))[1]
    torch.manual_seed(3)
    guide.step(x, y, scale=scale)
    torch.manual_seed(3)
    rows = torch.randperm(B)[: max(1, B // 5)]  # Y-Drop's subset of B // n_c samples (Eq. 9)

    class One(nn.Module):
        def __init__(self, s):
            super().__init__()
            self.model, self.s = model, s

        def forward(self, x):
            return self.model(x, self.s.expand(x.shape[0]))

    for row in rows.tolist():
        one = One(scale[row: row + 1])
        expected = ydrop.conductance(one, x[row: row + 1], y[row: row + 1], ["model.head.1", "model.head.4"])
        for layer, value in zip(layers, expected.values()):
            got = scored[layer][rows.tolist().index(row)]
            torch.testing.assert_close(got, value[0])


def test_guide_names_a_missing_forward_argument():
    model = Scaled()
    guide = ydrop.Guide(model)
    with pytest.raises(ValueError, match=r"scale.*guide\.step\(inputs, target, scale=\.\.\.\)"):
        guide.step(torch.randn(B, 4), torch.zeros(B, dtype=torch.long))


def test_forward_kwarg_tensors_must_be_batch_first():
    model = Scaled()
    guide = ydrop.Guide(model)
    with pytest.raises(ValueError, match=r"scale= .*one row per sample \(6, \.\.\.\).*\(5,\)"):
        guide.step(torch.randn(B, 4), torch.zeros(B, dtype=torch.long), scale=torch.ones(5))


@pytest.mark.parametrize("output", ["dict", "tuple"])
def test_a_model_returning_a_dict_or_tuple_is_told_about_to_logits(output):
    ids, pad, y = batch()
    model = ydrop.convert(Encoder(output), "excitation", score="gradxact", include="drop")
    with pytest.raises(ValueError, match=r"got " + output + r".*to_logits="):
        ydrop.Guide(model).step(ids, y, src_key_padding_mask=pad)


def test_to_logits_must_be_callable():
    with pytest.raises(TypeError, match=r"to_logits must be None or a callable.*'logits'"):
        ydrop.Guide(Scaled(), to_logits="logits")


def tanh_above():
    torch.manual_seed(0)  # Tanh above the scored layers: not the written chain pass, autograd
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16), nn.Tanh(),
                         nn.Dropout(0.5), nn.Linear(16, CLASSES))


@pytest.mark.parametrize("score", ["conductance", "gradxact"])
def test_scores_under_no_grad(score):
    model = ydrop.convert(tanh_above(), "ydrop")
    x, y = torch.randn(B, 6), torch.randint(0, CLASSES, (B,))
    expected = getattr(ydrop, score)(model, x, y, ["2", "5"])
    with torch.no_grad():
        got = getattr(ydrop, score)(model, x, y, ["2", "5"])
    for a, b in zip(got.values(), expected.values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("reuse_forward", [True, False])
def test_guide_scoring_under_no_grad(reuse_forward):
    """A training-mode forward under torch.no_grad (or guide.step there) still scores."""
    model = ydrop.convert(tanh_above(), "ydrop", warmup_epochs=0)
    guide = ydrop.Guide(model, reuse_forward=reuse_forward)
    x, y = torch.randn(B, 6), torch.randint(0, CLASSES, (B,))
    with torch.no_grad():
        guide.step(x, y)
        model(x)
    assert guide.scored_layers == ["2", "5"]
    assert model[2].mean_score.abs().sum() > 0


def test_a_forward_keyword_the_model_does_not_take_is_named_with_the_ones_it_takes():
    with pytest.raises(TypeError, match=r"forward keyword scael=, but Scaled\.forward takes no argument 'scael'; "
                                        r"it takes scale besides the batch"):
        ydrop.Guide(Scaled()).step(torch.randn(B, 4), torch.zeros(B, dtype=torch.long), scael=torch.ones(B))


def mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, CLASSES))


def cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout2d(0.2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4, CLASSES))


def transformer():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    return nn.Sequential(nn.Linear(6, 8), nn.TransformerEncoder(layer, 1, enable_nested_tensor=False),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * T, CLASSES))


@pytest.mark.parametrize("make, shape, scores", [
    (mlp, (6,), ("conductance", "excitation")), (cnn, (3, 5, 5), ("conductance", "excitation")),
    (transformer, (T, 6), ("conductance", "gradxact"))])
def test_bf16_autocast_around_the_forward_and_guide_step(make, shape, scores):
    x, y = torch.randn(B, *shape), torch.randint(0, CLASSES, (B,))
    for method, score in (("ydrop", scores[0]), ("excitation", scores[1]), ("activation", "activation")):
        torch.manual_seed(0)
        plain, model = ydrop.convert(make(), "dropout"), ydrop.convert(make(), method, score=score)
        guide = ydrop.Guide(model, reuse_forward=method == "ydrop")
        guide.set_epoch(5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            given = guide.step(x, y)
            out, expected = model(x), plain(x)
        F.cross_entropy(out.float(), y).backward()
        assert out.dtype == expected.dtype and torch.isfinite(out).all()
        assert all(torch.isfinite(s).all() for s in given.values())
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("call, error, message", [
    (lambda: ydrop.register_score("x", lambda *a: {}, whole_batch="yes"), TypeError,
     r"whole_batch must be True or False, got 'yes' of type str"),
    (lambda: ydrop.activation(Scaled().head, torch.randn(2, 8), 5), TypeError,
     r"layers must be a submodule of the model, its name or a list of them, got 5 of type int"),
    (lambda: ydrop.excitation_backprop("net", torch.randn(2, 8), 0, ["1"]), TypeError,
     r"model must be an nn\.Module, got 'net' of type str"),
    (lambda: ydrop.analysis.utilisation("net", [(torch.randn(2, 8), torch.zeros(2, dtype=torch.long))], "1"),
     TypeError, r"model must be an nn\.Module, got 'net'"),
    (lambda: ydrop.Guide(Scaled()).load_state_dict(3), TypeError, r"state must be a dict .*got 3 of type int"),
])
def test_bad_arguments_of_the_public_functions_name_the_argument_and_echo_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("name, attribute", [("data", "load_dataset"), ("train", "TrainConfig"),
                                             ("analysis", "evaluate")])
def test_the_documented_submodules_resolve_after_a_plain_import_ydrop(monkeypatch, name, attribute):
    """README's ydrop.data.load_dataset, ydrop.train.TrainConfig, ydrop.analysis.*: a fresh
    ``import ydrop`` has not loaded these subpackages (as if no other module had imported them)."""
    monkeypatch.delattr(ydrop, name, raising=False)
    assert callable(getattr(getattr(ydrop, name), attribute))


def binary_classifier(method):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), ydrop.create_dropout(method, warmup_epochs=0), nn.Linear(16, 1))


def test_a_one_logit_binary_classifier_is_told_how_to_be_scored():
    model, x, y = binary_classifier("ydrop"), torch.randn(8, 5), torch.ones(8, dtype=torch.long)
    guide = ydrop.Guide(model, reuse_forward=False)
    with pytest.raises(ValueError, match=r"class index 1, outside \[0, 0\].*to_logits=lambda z: torch.cat\(\[-z, z\]"):
        guide.step(x, y)


@pytest.mark.parametrize("score", ["conductance", "gradxact"])
def test_a_one_logit_binary_classifier_scores_as_its_two_logit_equivalent(score):
    model, x, y = binary_classifier("ydrop"), torch.randn(40, 5), torch.arange(40) % 2  # 8 samples scored
    model[2].score = score
    two = copy.deepcopy(model)
    with torch.no_grad():  # logits (-z, z): the same network with a head of two outputs
        two[3] = nn.Linear(16, 2)
        two[3].weight.copy_(torch.cat([-model[3].weight, model[3].weight]))
        two[3].bias.copy_(torch.cat([-model[3].bias, model[3].bias]))
    given = ydrop.Guide(model, to_logits=lambda z: torch.cat([-z, z], dim=1), reuse_forward=False)
    torch.manual_seed(1)
    got = given.step(x, y)["2"]
    torch.manual_seed(1)
    expected = ydrop.Guide(two, reuse_forward=False).step(x, y)["2"]
    torch.testing.assert_close(got, expected)
