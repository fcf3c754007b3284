"""The networks of the Y-Drop and Excitation Dropout papers, with the dropout
method as an argument: ``ydrop.models.create("s3", dropout="ydrop")``.

FC_1..FC_4, S_1..S_4, M_1, M_2 (Y-Drop), CNN-2 (Excitation Dropout), VGG-16/19,
AlexNet (torchvision layout) and WRN-28-10. No weights are downloaded; load local
ones with :func:`load_state_dict_file`. See :mod:`ydrop.models.nets` for the
architecture choices where the papers are vague.
"""

from ._common import ClassifierNet
from .registry import MODELS, create, list_models, load_state_dict_file
from .wrn import WideBasicBlock, WideResNet

__all__ = [
    "create",
    "list_models",
    "load_state_dict_file",
    "MODELS",
    "ClassifierNet",
    "WideResNet",
    "WideBasicBlock",
]
