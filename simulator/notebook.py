"""The Python API under its former name: `from simulator import notebook as cs` still works; everything lives in
simulator.api, the one front door."""

from simulator.api import *  # noqa: F403
from simulator.api import __all__  # noqa: F401
