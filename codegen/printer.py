"""A sympy printer for Numba: one `_print_X` per construct, nothing string-munged.

Numbers are printed as float literals of the kernel's dtype (for float32 wrapped in
`np.float32(...)`, so that no float64 constant silently promotes the arithmetic); a numeric
subexpression such as sqrt(2)/(2*sqrt(pi)) is evaluated and printed as one literal; small
integer powers become products. Three forms are printed so that they cannot overflow:
log(1 + exp(u)) as `np.logaddexp(0, u)`, exp(u)/(1 + exp(u)) as `1/(1 + np.exp(-u))`, and
1 - exp(u) as `-np.expm1(u)`.

Functions print as NumPy calls where NumPy has them (`np.exp`, `np.tanh`, `np.sin`, ...),
`erf` as `math.erf` (the generated module then imports math), `Max`/`Min` as the builtins
`max`/`min`, `sign` as `np.sign` and `Heaviside` as a conditional expression. Anything else
is refused with ValueError rather than printed as code that fails in Numba.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from .literals import literal


class NumbaPrinter(PythonCodePrinter):
    printmethod = "_numbacode"
    language = "Python (Numba)"

    def __init__(self, dtype: str = "float64", settings=None, *, inline: bool = True):
        super().__init__(settings or {})
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dtype
        # float32: the helpers Numba inlines into each call site (so that the loops around
        # them vectorize), or, with inline=False, their twins `_exp32_call`, ... compiled once
        # and called (code that runs once per sample and output, where inlining every call
        # costs seconds of compile time and gains nothing)
        self.helper_suffix = "" if inline else "_call"

    # float32 kernels call the module's own vectorizable exp/log/tanh (fastmath32.jinja)
    FAST32 = {"exp": "_exp32", "log": "_log32", "tanh": "_tanh32"}

    def fn(self, name: str) -> str:
        if self.dtype == "float32":
            return self.FAST32[name] + self.helper_suffix
        return f"np.{name}"

    # -- numbers ------------------------------------------------------------------------
    def literal(self, value: float) -> str:
        return literal(value, self.dtype)

    def _print_Float(self, expr):
        return self.literal(float(expr))

    def _print_Integer(self, expr):
        return self.literal(int(expr))

    def _print_Rational(self, expr):
        return self.literal(float(expr))

    def _print_Half(self, expr):
        return self.literal(0.5)

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_NumberSymbol(self, expr):  # pi, E: np.pi would be a float64 in float32 code
        return self.literal(float(expr))

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print(self, expr, **kwargs):
        # a numeric subexpression (sqrt(2), 1/sqrt(pi), exp(-1/2)) as one literal
        if isinstance(expr, sp.Expr) and not expr.is_Atom and expr.is_number:
            value = complex(expr)
            if value.imag != 0 or not np.isfinite(value.real):
                raise ValueError(f"the Numba printer cannot print the constant {expr}")
            return self.literal(value.real)
        return super()._print(expr, **kwargs)

    def _print_Mul(self, expr):
        # exp(u)/(1 + exp(u)) as 1/(1 + exp(-u)): finite for any u
        factors = list(expr.args)
        for i, f in enumerate(factors):
            u = _logistic_denominator(f)
            if u is not None and sp.exp(u) in factors:
                rest = [g for j, g in enumerate(factors) if j != i]
                rest.remove(sp.exp(u))
                one = self.literal(1)
                denominator = f"({one} + {self.fn('exp')}({self._print(-u)}))"
                if not rest:
                    return f"{one}/{denominator}"
                return f"{self.parenthesize(sp.Mul(*rest), PRECEDENCE['Mul'])}/{denominator}"
        # the numeric factors as one literal: 0.5*x, not (1/2)*x; sqrt(2)/2*x as 0.707...*x
        numeric = [a for a in factors if a.is_number]
        if numeric and len(numeric) < len(factors):
            c = sp.Mul(*numeric)
            if not c.is_Integer:
                rest = sp.Mul(*[a for a in factors if not a.is_number])
                return f"{self._print(c)}*{self.parenthesize(rest, PRECEDENCE['Mul'])}"
        return super()._print_Mul(expr)

    def _print_Add(self, expr, order=None):
        # 1 - exp(u) as -expm1(u): exact for small u, and never inf - inf
        if len(expr.args) == 2 and sp.S.One in expr.args:
            other = expr.args[0] if expr.args[1] == sp.S.One else expr.args[1]
            if other.is_Mul and other.args[0] == sp.S.NegativeOne and len(other.args) == 2 \
                    and isinstance(other.args[1], sp.exp):
                return f"-np.expm1({self._print(other.args[1].args[0])})"
        return super()._print_Add(expr, order=order)

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
        return f"{self.fn('exp')}({self._print(expr.args[0])})"

    def _print_log(self, expr):
        arg = expr.args[0]
        # log(1 + exp(u)): softplus, computed without overflow for large u
        if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg.args[0] if arg.args[1] == sp.S.One else arg.args[1]
            if isinstance(other, sp.exp):
                if self.dtype == "float32":
                    return f"_softplus32{self.helper_suffix}({self._print(other.args[0])})"
                return f"np.logaddexp({self.literal(0)}, {self._print(other.args[0])})"
        return f"{self.fn('log')}({self._print(arg)})"

    def _print_tanh(self, expr):
        return f"{self.fn('tanh')}({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_erf(self, expr):
        return f"math.erf({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        return f"np.sign({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return f"max({', '.join(self._print(a) for a in expr.args)})"

    def _print_Min(self, expr):
        return f"min({', '.join(self._print(a) for a in expr.args)})"

    def _print_Heaviside(self, expr):
        # sympy's Heaviside(u) is 1/2 at u = 0 unless given another value
        u = self._print(expr.args[0])
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return (f"({self.literal(1)} if {u} > {self.literal(0)} else ({self.literal(0)} if "
                f"{u} < {self.literal(0)} else {self._print(at_zero)}))")

    def _print_DiracDelta(self, expr):
        raise ValueError(f"the Numba printer cannot print {expr} (a distribution)")

    def _print_not_supported(self, expr):
        raise ValueError(f"the Numba printer has no NumPy equivalent for {expr}")

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
        return f"{self._side(expr.lhs, expr.rhs)} {ops[expr.rel_op]} " \
               f"{self._side(expr.rhs, expr.lhs)}"

    def _side(self, side, other):
        # an integer compared with an integer variable (the sample index s) stays an integer
        if side.is_Integer and other.is_Symbol and other.is_integer:
            return str(int(side))
        return self._print(side)

    def _print_Symbol(self, expr):
        return expr.name


def _logistic_denominator(f: sp.Expr) -> sp.Expr | None:
    """u when f is 1/(1 + exp(u)), else None."""
    if f.is_Pow and f.exp == -1 and f.base.is_Add and len(f.base.args) == 2 \
            and sp.S.One in f.base.args:
        other = f.base.args[0] if f.base.args[1] == sp.S.One else f.base.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def numba_code(expr: sp.Expr, dtype: str = "float64") -> str:
    return NumbaPrinter(dtype).doprint(expr)
