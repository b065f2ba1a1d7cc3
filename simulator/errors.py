"""Errors the user can fix. The CLI prints them as one message and exits non-zero."""


class CostsimError(Exception):
    """Base class: the message names the problem, the numbers and a fix."""


class SpecError(CostsimError):
    """A hardware profile, model spec or config file is missing, malformed or invalid."""


class LayoutError(CostsimError):
    """A parallel layout does not divide the model or the cluster."""


class InfeasibleError(CostsimError):
    """A layout divides but does not fit in GPU memory, or no layout fits."""

    def __init__(self, message: str, finding: str | None = None, needed_bytes: float | None = None):
        super().__init__(message)
        self.finding = message if finding is None else finding
        """What does not fit, with its numbers but without the fix: a caller whose options differ from the ones the
        message's fix names (costsim claim has no --tp or --precision) gives its own fix after it."""
        self.needed_bytes = needed_bytes
        """Memory per GPU the refused layout needs (the least any layout needs, where a search found none that fits);
        None where the refusal is not about one layout's memory."""


class InputError(CostsimError):
    """A command-line number or option is out of range or does not parse."""


class MeasurementError(CostsimError):
    """A calibration cannot go on measuring: the device failed in a way that spoils every later point."""
