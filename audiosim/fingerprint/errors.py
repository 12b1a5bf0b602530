"""Errors of reading a model checkpoint.

In a module of their own, free of torch, so that the command line can turn
them into a message without importing the model.
"""


class CheckpointError(ValueError):
    """A file that is not a readable audiosim checkpoint (the message names it)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding objects other than tensors and plain data.

    Unpickling such objects can run arbitrary code (a crafted ``.pt`` in a
    shared data home, say), so the file is refused unread.
    """
