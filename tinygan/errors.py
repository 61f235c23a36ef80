"""The library's own error types.

Every error tinygan raises on purpose is a ``TinyGANError``; the subclasses say
which part of the library refused. Each message names the fault and the fix.
"""


class TinyGANError(Exception):
    """Base class of every error tinygan raises on purpose."""


class BackendError(TinyGANError):
    """An array backend was asked for that cannot be used here."""


class ConfigError(TinyGANError, ValueError):
    """A setting is out of range or of the wrong type (batch size, learning rate, ...)."""


class DataError(TinyGANError):
    """A data file is missing, truncated, corrupt or fails its checksum."""


class CheckpointError(TinyGANError):
    """A checkpoint is missing, truncated, unsafe or does not fit the model."""


class TrainingDiverged(TinyGANError):
    """A loss or parameter became nan or inf."""
