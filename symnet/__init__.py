"""symnet: a compiler for multilayer perceptrons.

A TOML spec is lowered to sympy, differentiated by reverse mode (backprop), scheduled
(store or recompute, with CSE) and emitted as a standalone Numba module.
"""

__version__ = "0.1.0"

from .compiler import build, compile
from .errors import SpecError, SymnetError
from .spec import Spec, load_spec, spec_from_dict

__all__ = [
           "Spec",
           "SpecError",
           "SymnetError",
           "__version__",
           "build",
           "compile",
           "load_spec",
           "spec_from_dict",
]
