import pytest

from ydrop.train import TrainConfig


@pytest.fixture
def tiny(tmp_path):
    """A few-second config: fc1 with 16 hidden units on digits."""
    def make(**changes):
        values = dict(out=str(tmp_path / "runs"), model_kwargs={"hidden": (16,)}, max_epochs=4, device="cpu")
        values.update(changes)
        return TrainConfig(**values)
    return make
