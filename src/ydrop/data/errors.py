"""The two errors the data package raises about files on disk.

Both subclass a built-in exception so that callers who catch ``FileNotFoundError``
or ``ValueError`` keep working; the message always names the file(s) concerned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DatasetNotFoundError", "DatasetFormatError", "check_label_range"]


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are missing and could not be downloaded.

    The message lists every expected file with its full path, the URL it would be
    downloaded from and, when a download was tried, why each attempt failed.
    ``cli_message`` says the same with the ``ydrop`` command's options
    (``--mirror``, ``--no-download``) in place of ``load_dataset``'s arguments.
    """

    def __init__(self, message: str, cli_message: str | None = None) -> None:
        super().__init__(message)
        self.cli_message = message if cli_message is None else cli_message


class DatasetFormatError(ValueError):
    """A dataset file exists but is damaged or is not in the expected format.

    The message starts with the file's path and says what is wrong (bad magic
    number, size that disagrees with the header, unreadable gzip or pickle, ...),
    so that a truncated download never turns into a silently wrong dataset.
    """


def check_label_range(labels: np.ndarray, low: int, high: int, what: str, expected: str) -> None:
    """Raise a :class:`DatasetFormatError` "``what`` in [min, max], expected ``expected``"
    when some entry of the integer array ``labels`` (any shape) lies outside
    [``low``, ``high``]. ``what`` names the file and its labels; an empty array passes."""
    if labels.size and (labels.min() < low or labels.max() > high):
        raise DatasetFormatError(f"{what} in [{labels.min()}, {labels.max()}], expected {expected}")
