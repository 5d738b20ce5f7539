"""The CUDA printer: NumbaPrinter's constructs, printed with the `math` module.

Numba's CUDA target compiles `math.exp`, `math.tanh`, ... of a float32 to the float32
libdevice functions (expf, tanhf) and of a float64 to the float64 ones; NumPy calls
(`np.exp`, `np.logaddexp`, `np.sign`) are not what a CUDA kernel should call, and Max/Min
print as the module's device functions _max/_min rather than the builtins. Everything
else (literals of the dtype, one literal per numeric subexpression, products for small
powers, the overflow-free forms) is the parent's.
"""

from __future__ import annotations

import math

import sympy as sp

from ..printer import NumbaPrinter


class CudaPrinter(NumbaPrinter):
    printmethod = "_cudacode"
    language = "Python (Numba CUDA)"

    def fn(self, name: str) -> str:
        return f"math.{name}"

    def _module_format(self, fqn, register=True):
        name = fqn.split(".")[-1]
        if fqn.split(".")[0] in ("math", "numpy", "cmath") and hasattr(math, name):
            return f"math.{name}"
        raise ValueError(f"the CUDA printer has no math-module equivalent for {fqn!r}")

    def _print_Add(self, expr, order=None):
        # 1 - exp(u) as -expm1(u), as in the CPU form
        if len(expr.args) == 2 and sp.S.One in expr.args:
            other = expr.args[0] if expr.args[1] == sp.S.One else expr.args[1]
            if other.is_Mul and other.args[0] == sp.S.NegativeOne and len(other.args) == 2 \
                    and isinstance(other.args[1], sp.exp):
                return f"-math.expm1({self._print(other.args[1].args[0])})"
        return super()._print_Add(expr, order=order)

    def _print_Pow(self, expr, rational=False):
        if expr.exp == sp.S.Half:
            return f"math.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational=rational)

    def _print_log(self, expr):
        arg = expr.args[0]
        # log(1 + exp(u)): the module's overflow-free _softplus(u)
        if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg.args[0] if arg.args[1] == sp.S.One else arg.args[1]
            if isinstance(other, sp.exp):
                return f"_softplus({self._print(other.args[0])})"
        return f"math.log({self._print(arg)})"

    def _print_sign(self, expr):
        return f"_sign({self._print(expr.args[0])})"

    # Numba's CUDA target does not type the builtins max and min of scalars everywhere: the
    # module's two-argument device functions _max and _min, folded over the arguments
    def _print_Max(self, expr):
        return self._fold("_max", expr.args)

    def _print_Min(self, expr):
        return self._fold("_min", expr.args)

    def _fold(self, name, args):
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{name}({text}, {self._print(a)})"
        return text


def cuda_code(expr: sp.Expr, dtype: str = "float64") -> str:
    return CudaPrinter(dtype).doprint(expr)
