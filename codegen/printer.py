"""A sympy printer for Numba: one `_print_X` per construct, nothing string-munged.

Numbers are printed as float literals of the kernel's dtype (for float32 wrapped in
`np.float32(...)`, so that no float64 constant silently promotes the arithmetic); small
integer powers become products; log(1 + exp(u)) becomes the overflow-free `np.logaddexp(0, u)`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter


class NumbaPrinter(PythonCodePrinter):
    printmethod = "_numbacode"
    language = "Python (Numba)"

    def __init__(self, dtype: str = "float64", settings=None):
        super().__init__(settings or {})
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dtype

    # -- numbers ------------------------------------------------------------------------
    def literal(self, value: float) -> str:
        text = repr(float(value))
        return f"np.float32({text})" if self.dtype == "float32" else text

    def _print_Float(self, expr):
        return self.literal(float(expr))

    def _print_Integer(self, expr):
        return self.literal(int(expr))

    def _print_Rational(self, expr):
        return self.literal(float(expr))

    def _print_Half(self, expr):
        return self.literal(0.5)

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_Mul(self, expr):
        # a fractional coefficient as one literal: 0.5*x, not (1/2)*x or (0.5)*x
        c, rest = expr.as_coeff_Mul()
        if c.is_Rational and not c.is_Integer and rest is not sp.S.One:
            return f"{self.literal(float(c))}*{self.parenthesize(rest, PRECEDENCE['Mul'])}"
        return super()._print_Mul(expr)

    # -- powers -------------------------------------------------------------------------
    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        prec = PRECEDENCE["Mul"]
        if exp.is_Integer and 0 < abs(int(exp)) <= 4:
            b = self.parenthesize(base, PRECEDENCE["Atom"] - 1 if not base.is_Atom else prec)
            if not base.is_Atom:
                b = f"({self._print(base)})"
            product = "*".join([b] * abs(int(exp)))
            if exp > 0:
                return product if abs(int(exp)) == 1 else f"({product})"
            return f"{self.literal(1)}/{product}" if abs(int(exp)) == 1 \
                else f"{self.literal(1)}/({product})"
        if exp == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        return f"{self.parenthesize(base, precedence(expr))}**{self.parenthesize(exp, prec)}"

    # -- functions ----------------------------------------------------------------------
    def _module_format(self, fqn, register=True):
        # sympy's Python printer names math.* / numpy.* functions; the generated module
        # imports numpy as np only, so every function must exist there
        name = fqn.split(".")[-1]
        if fqn.split(".")[0] in ("math", "numpy", "cmath") and hasattr(np, name):
            return f"np.{name}"
        raise ValueError(f"the Numba printer has no NumPy equivalent for {fqn!r}")

    def _print_exp(self, expr):
        return f"np.exp({self._print(expr.args[0])})"

    def _print_log(self, expr):
        arg = expr.args[0]
        # log(1 + exp(u)): softplus, computed without overflow for large u
        if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg.args[0] if arg.args[1] == sp.S.One else arg.args[1]
            if isinstance(other, sp.exp):
                return f"np.logaddexp({self.literal(0)}, {self._print(other.args[0])})"
        return f"np.log({self._print(arg)})"

    def _print_tanh(self, expr):
        return f"np.tanh({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        # (a if cond else (b if cond2 else c)); the last piece must be unconditional
        pieces = list(expr.args)
        if pieces[-1].cond != sp.true:
            raise ValueError(f"Piecewise without a default branch cannot be printed: {expr}")
        text = self._print(pieces[-1].expr)
        for e, c in reversed(pieces[:-1]):
            text = f"({self._print(e)} if {self._print(c)} else {text})"
        return text

    def _print_Relational(self, expr):
        ops = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        return f"{self._print(expr.lhs)} {ops[expr.rel_op]} {self._print(expr.rhs)}"

    def _print_Symbol(self, expr):
        return expr.name


def numba_code(expr: sp.Expr, dtype: str = "float64") -> str:
    return NumbaPrinter(dtype).doprint(expr)
