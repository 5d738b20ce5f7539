"""The CUDA printer: NumbaPrinter's constructs, printed with the `math` module.

Numba's CUDA target compiles `math.exp`, `math.tanh`, ... of a float32 to the float32
libdevice functions (expf, tanhf) and of a float64 to the float64 ones; NumPy calls
(`np.exp`, `np.logaddexp`, `np.sign`) are not what a CUDA kernel should call, and sign,
softplus, Max and Min print as the module's device functions (_sign, _softplus, _max, _min).
That is this printer's table, `FUNCTIONS`; everything else (literals of the dtype, one literal
per numeric subexpression, products for small powers, the overflow-free forms, the record of
the modules used) is the parent's.
"""

from __future__ import annotations

import math

import sympy as sp

from ..printer import NumbaPrinter


class CudaPrinter(NumbaPrinter):
    printmethod = "_cudacode"
    language = "Python (Numba CUDA)"

    # sympy function (or a form's function) -> the function printed, as in NumbaPrinter
    FUNCTIONS = {
        "exp": "math.exp",
        "log": "math.log",
        "tanh": "math.tanh",
        "sin": "math.sin",
        "cos": "math.cos",
        "erf": "math.erf",
        "sign": "_sign",
        "Abs": "abs",
        "Max": "_max",
        "Min": "_min",
        "sqrt": "math.sqrt",
        "expm1": "math.expm1",
        "softplus": "_softplus",  # log(1 + exp(u)), overflow-free
    }
    FLOAT32: dict[str, str] = {}  # libdevice has the float32 functions

    def _module_format(self, fqn, register=True):
        # sympy's own names outside the table: the math module's of the same name, or refused
        name = fqn.split(".")[-1]
        if fqn.split(".")[0] in ("math", "numpy", "cmath") and hasattr(math, name):
            return self._qualified("math", name)
        raise ValueError(f"the CUDA printer has no math-module equivalent for {fqn!r}")

    # Numba's CUDA target does not type the builtins max and min of scalars everywhere: the
    # module's two-argument device functions _max and _min, folded over the arguments
    def _print_Max(self, expr):
        return self._fold(self._function("Max"), expr.args)

    def _print_Min(self, expr):
        return self._fold(self._function("Min"), expr.args)

    def _fold(self, name, args):
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{name}({text}, {self._print(a)})"
        return text


def cuda_code(expr: sp.Expr, dtype: str = "float64") -> str:
    return CudaPrinter(dtype).doprint(expr)
