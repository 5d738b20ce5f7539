"""A sympy printer for Numba: one `_print_X` per construct, nothing string-munged.

Numbers are printed as float literals of the kernel's dtype (for float32 wrapped in
`np.float32(...)`, so that no float64 constant silently promotes the arithmetic); a numeric
subexpression such as sqrt(2)/(2*sqrt(pi)) is evaluated and printed as one literal; small
integer powers become products. Three forms are printed so that they cannot overflow:
log(1 + exp(u)) as `np.logaddexp(0, u)`, exp(u)/(1 + exp(u)) as `1/(1 + np.exp(-u))`, and
1 - exp(u) as `-np.expm1(u)`.

Functions are table-driven, as in sympy's own printers: `FUNCTIONS` maps a sympy function's
name to the function printed, fully qualified (`numpy.exp` prints as `np.exp`, `math.erf` as
`math.erf`; a name without a module is a builtin such as `abs`, or the generated module's own
function), and `FLOAT32` puts the module's vectorizable float32 helpers in place of some of
them. Every name in the table prints as a call of its arguments unless the printer has a
`_print_X` for it (`log`: the softplus form; `Heaviside`: a conditional expression); the forms
above and `x**(1/2)` take their functions from the table too (`expm1`, `logaddexp`, `sqrt`).
A function outside the table that sympy's Python printer knows prints as NumPy's function of
that name where NumPy has one; anything else is refused with ValueError rather than printed as
code that fails in Numba.

While printing, the printer records the modules its code needs in `module_imports` (sympy's
attribute: module -> the names used from it), so that a generated file imports `math` only
where a printed line calls it, and the module's own helpers it calls in `helpers_used` (the
float32 and float64 elementwise functions), so that a template includes them only where called.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from .literals import literal


def _print_table_function(self, expr):
    """A function of the printer's table, called on its printed arguments (a subclass of a
    table's function, such as symnet.layers' ShiftMax, prints as that function)."""
    args = ", ".join(self._print(a) for a in expr.args)
    name = next(c.__name__ for c in type(expr).__mro__ if c.__name__ in self.functions)
    return f"{self._function(name)}({args})"


class NumbaPrinter(PythonCodePrinter):
    printmethod = "_numbacode"
    language = "Python (Numba)"

    # sympy function (or a form's function: sqrt for x**(1/2), expm1 for 1 - exp(u),
    # logaddexp for log(1 + exp(u))) -> the function printed, fully qualified: its module is
    # what the generated file must import (numpy as np); no module: a builtin
    FUNCTIONS = {
        "exp": "numpy.exp",
        "log": "numpy.log",
        "tanh": "numpy.tanh",
        "sin": "numpy.sin",
        "cos": "numpy.cos",
        "erf": "math.erf",  # NumPy has no erf
        "sign": "numpy.sign",
        "Abs": "abs",
        "Max": "max",
        "Min": "min",
        "sqrt": "numpy.sqrt",
        "expm1": "numpy.expm1",
        "logaddexp": "numpy.logaddexp",
    }
    # float32 kernels call the module's own vectorizable exp/log/tanh/softplus
    # (fastmath32.jinja) in their place
    FLOAT32 = {"exp": "_exp32", "log": "_log32", "tanh": "_tanh32", "softplus": "_softplus32"}
    # float64 kernels of the loop forms (NumbaPrinter(vector64=True)) call the module's own
    # vectorizable exp and tanh (fastmath64.jinja), as accurate as libm's to 2 ulp
    FLOAT64 = {"exp": "_exp64", "tanh": "_tanh64"}
    # how the generated file imports a module
    ALIASES = {"numpy": "np"}

    def __init__(self, dtype: str = "float64", settings=None, *, inline: bool = True,
                 vector64: bool = False):
        super().__init__(settings or {})
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dtype
        # float32: the helpers LLVM inlines into each call site (forceinline, so that the
        # loops around them vectorize), or, with inline=False, their twins `_exp32_call`, ...
        # compiled once and called (code that runs once per sample and output, where inlining
        # every call costs compile time and gains nothing)
        self.helper_suffix = "" if inline else "_call"
        self.functions = dict(self.FUNCTIONS)
        if dtype == "float32":
            self.functions.update({k: v + self.helper_suffix for k, v in self.FLOAT32.items()})
        elif vector64:
            self.functions.update(self.FLOAT64)
        # the module's own helpers the printed code calls (the template includes them)
        self.helpers_used: set[str] = set()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _print_from_table(cls)

    @property
    def calls_float64_helpers(self) -> bool:
        """Whether the printed code calls _exp64 or _tanh64 (the template includes them)."""
        return bool(self.helpers_used & set(self.FLOAT64.values()))

    def _function(self, name: str) -> str:
        """The printed name of the table's function `name`; its module is recorded."""
        module, _, attr = self.functions[name].rpartition(".")
        if attr.startswith("_"):
            self.helpers_used.add(attr)
        return self._qualified(module, attr) if module else attr

    def _qualified(self, module: str, name: str) -> str:
        self.module_imports[module].add(name)
        return f"{self.ALIASES.get(module, module)}.{name}"

    # -- numbers ------------------------------------------------------------------------
    def literal(self, value: float) -> str:
        if self.dtype == "float32":
            self.module_imports["numpy"].add("float32")
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
                denominator = f"({one} + {self._function('exp')}({self._print(-u)}))"
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
                return f"-{self._function('expm1')}({self._print(other.args[1].args[0])})"
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
            return f"{self._function('sqrt')}({self._print(base)})"
        return f"{self.parenthesize(base, precedence(expr))}**{self.parenthesize(exp, prec)}"

    # -- functions ----------------------------------------------------------------------
    def _module_format(self, fqn, register=True):
        # sympy's own names for a function or constant outside the table (math.cosh,
        # math.inf): NumPy's of the same name, or refused
        name = fqn.split(".")[-1]
        if fqn.split(".")[0] in ("math", "numpy", "cmath") and hasattr(np, name):
            return self._qualified("numpy", name)
        raise ValueError(f"the Numba printer has no NumPy equivalent for {fqn!r}")

    def _print_log(self, expr):
        arg = expr.args[0]
        # log(1 + exp(u)): softplus, computed without overflow for large u
        if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg.args[0] if arg.args[1] == sp.S.One else arg.args[1]
            if isinstance(other, sp.exp):
                return self._softplus(self._print(other.args[0]))
        return f"{self._function('log')}({self._print(arg)})"

    def _softplus(self, u: str) -> str:
        """log(1 + exp(u)) without overflow: the backend's softplus function where its
        table has one, else logaddexp(0, u)."""
        if "softplus" in self.functions:
            return f"{self._function('softplus')}({u})"
        return f"{self._function('logaddexp')}({self.literal(0)}, {u})"

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


def _print_from_table(cls) -> None:
    """Print each function of `cls`'s table through `_print_table_function`, but where `cls`
    or a parent printer of this module has its own `_print_X` (sympy's are replaced)."""
    ours = [c for c in cls.__mro__ if issubclass(c, NumbaPrinter)]
    for name in cls.FUNCTIONS:
        if not any(f"_print_{name}" in c.__dict__ for c in ours):
            setattr(cls, f"_print_{name}", _print_table_function)


_print_from_table(NumbaPrinter)


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
