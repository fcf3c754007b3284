import pytest

from ydrop.train import TrainConfig


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("dataset", "imagenet", "'digits'"),
        ("method", "dropconnect", "'ydrop'"),
        ("seed", -1, "integer >= 0"),
        ("device", "tpu", "'cuda'"),
        ("protocol", "adam", "'excitation'"),
        ("lr", 0, "> 0"),
        ("lr", float("inf"), "> 0"),
        ("momentum", 1.0, "[0, 1)"),
        ("momentum", 2, "[0, 1)"),
        ("momentum", -0.1, "[0, 1)"),
        ("weight_decay", -1e-4, ">= 0"),
        ("lr_gamma", 0, "(0, 1]"),
        ("batch_size", 2.5, "integer >= 1"),
        ("patience", 0, "integer >= 1"),
        ("monitor", "val_accuracy", "'val_loss', 'val_acc'"),
        ("val_fraction", 1.0, "(0, 1)"),
        ("augment", "yes", "True, False or None"),
        ("method_kwargs", [1], "dict"),
        ("information_beta", -1.0, ">= 0"),
        ("dry_run", 1, "True or False"),
    ],
)
def test_bad_field_names_value_and_allowed(field, value, allowed):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{field: value})
    message = str(info.value)
    assert field in message and repr(value) in message and allowed in message


def test_resolved_fills_protocol_defaults_and_device():
    c = TrainConfig().resolved()
    assert (c.device, c.optimizer, c.lr, c.momentum, c.batch_size, c.patience, c.max_epochs) == (
        "cpu", "sgd", 0.01, 0.9, 64, 10, 60)
    assert c.augment is False
    e = TrainConfig(protocol="excitation", dataset="cifar10", lr_step_size=None).resolved()
    assert (e.optimizer, e.lr, e.weight_decay, e.batch_size, e.patience, e.iterations) == (
        "adam", 1e-3, 5e-3, 100, None, 20000)
    assert e.augment is True
    assert TrainConfig(dry_run=True).resolved().max_epochs == 2
    assert TrainConfig(lr=0.1).resolved().lr == 0.1  # explicit values win
    assert TrainConfig(momentum=0.99).resolved().momentum == 0.99


def test_dict_round_trip_and_unknown_key():
    c = TrainConfig(method="ydrop", method_kwargs={"elasticity": 0.01}, model_kwargs={"hidden": (16,)})
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown config key.*'epochz'.*allowed"):
        TrainConfig.from_dict({"epochz": 3})
