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


# --- argument checks: the one home of validation, every check ``check_x(name, value, ...)`` --

def check_int(name, value, minimum=1):
    """``value`` as an int >= ``minimum`` (bools refused), else ConfigError naming ``name``."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < minimum:
        kind = "a positive integer" if minimum == 1 else (
            "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}")
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_positive(name, value):
    """``value`` as a finite float > 0, else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_non_negative(name, value):
    """``value`` as a finite float >= 0, else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_in_range(name, value, low, high):
    """``value`` as a float with low <= value < high, else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}), got {value!r}")
    return float(value)


def check_probability(name, value):
    """``value`` as a float with 0 < value <= 1 (bools refused), else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def check_choice(name, value, choices, error=ConfigError):
    """``value`` if it is one of ``choices``, else ``error`` (ConfigError) listing them."""
    if value not in choices:
        raise error(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    return value
