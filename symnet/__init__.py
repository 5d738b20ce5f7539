"""symnet: a compiler for multilayer perceptrons.

A TOML spec is lowered to sympy, differentiated by reverse mode (backprop), scheduled
(store or recompute, with CSE) and emitted as a standalone Numba module.
"""

import os as _os

__version__ = "0.1.0"

# Installed, symnet is the one top-level package: its code generators and their templates
# are the subpackages symnet.codegen and symnet.templates. A checkout keeps them as the
# folders codegen/ and templates/ beside symnet/ (pyproject.toml's package-dir maps them at
# install time). Run from a checkout without installing it (`python -m symnet` at its root,
# PYTHONPATH naming it, or the checkout shadowing an installed symnet), the package's path
# takes in the checkout's root as well, where Python then finds those two subpackages.
_CHECKOUT = _os.path.dirname(__path__[0])
if not _os.path.isdir(_os.path.join(__path__[0], "codegen")) \
        and _os.path.isfile(_os.path.join(_CHECKOUT, "codegen", "__init__.py")):
    __path__.append(_CHECKOUT)

from .compiler import build, compile  # noqa: E402
from .errors import SpecError, SymnetError  # noqa: E402
from .spec import Spec, load_spec, spec_from_dict  # noqa: E402

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
