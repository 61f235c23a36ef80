"""tinygan: the original GAN (Goodfellow et al., 2014) with every gradient written by hand."""

__version__ = "0.1.0"

from .backend import Backend, get_backend  # noqa: E402
from .errors import (BackendError, CheckpointError, ConfigError, DataError,  # noqa: E402
                     TinyGANError, TrainingDiverged)

__all__ = ["__version__", "Backend", "get_backend", "TinyGANError", "BackendError",
           "ConfigError", "DataError", "CheckpointError", "TrainingDiverged"]
