"""Custom formulas in a spec (`activation = { expr = "..." }`, `[loss] expr = "..."`), parsed
safely into sympy.

The text is never given to `eval`, `exec` or `sympy.sympify`. It is parsed with
`ast.parse(text, mode="eval")` and the tree is walked node by node; only these nodes are
accepted, and everything else is refused with a `SpecError` naming the file and the key:

- numbers: int and float literals (not bool, complex, strings or bytes), at most
  `MAX_LITERAL` in magnitude;
- the formula's variables (`x` for an activation; `y` and `t` for a loss) and the constant `pi`;
- unary `+` and `-`; binary `+`, `-`, `*`, `/` and `**`;
- calls of the functions in `FUNCTIONS` by their bare name, with exactly their number of
  positional arguments (no keywords, no `*args`).

Bounds keep the work small whatever the text: at most `MAX_LENGTH` characters drawn from
`ALLOWED_CHARACTERS` (so no quotes, comments, brackets or backslashes), trees at most
`MAX_DEPTH` deep, numeric exponents at most `MAX_EXPONENT` in magnitude. Every constant part
is also evaluated in plain floats as it is built, so a constant that overflows (`10**10**10`,
`exp(1000)`), divides by zero or is not real is refused before sympy sees it.
"""

from __future__ import annotations

import ast
import math
import string
from collections.abc import Callable, Mapping

from .errors import SpecError
from .lazy import sp

MAX_LENGTH = 1000
MAX_DEPTH = 50
MAX_LITERAL = 1e15
MAX_EXPONENT = 64
ALLOWED_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.,+-*/() ")


def _sigmoid(u):
    return 1 / (1 + sp.exp(-u))


def _softplus(u):
    return sp.log(1 + sp.exp(u))


def _float_sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _float_softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


# name -> (arity, sympy builder, float evaluator for constant arguments)
FUNCTIONS: dict[str, tuple[int, Callable[..., sp.Expr], Callable[..., float]]] = {
    "exp": (1, lambda a: sp.exp(a), math.exp),
    "log": (1, lambda a: sp.log(a), math.log),
    "sqrt": (1, lambda a: sp.sqrt(a), math.sqrt),
    "abs": (1, lambda a: sp.Abs(a), abs),
    "tanh": (1, lambda a: sp.tanh(a), math.tanh),
    "sigmoid": (1, _sigmoid, _float_sigmoid),
    "softplus": (1, _softplus, _float_softplus),
    "erf": (1, lambda a: sp.erf(a), math.erf),
    "sin": (1, lambda a: sp.sin(a), math.sin),
    "cos": (1, lambda a: sp.cos(a), math.cos),
    "max": (2, lambda a, b: sp.Max(a, b), max),
    "min": (2, lambda a, b: sp.Min(a, b), min),
}
# name -> (sympy constant, made on use; its float value)
CONSTANTS: dict[str, tuple[Callable[[], sp.Expr], float]] = {"pi": (lambda: sp.pi, math.pi)}

_BINARY = {
    ast.Add: (lambda a, b: a + b, "+"),
    ast.Sub: (lambda a, b: a - b, "-"),
    ast.Mult: (lambda a, b: a * b, "*"),
    ast.Div: (lambda a, b: a / b, "/"),
    ast.Pow: (lambda a, b: a ** b, "**"),
}


class _Refused(Exception):
    """Why a formula is refused (turned into a SpecError by `parse`)."""


_FUNCTION_LIST = ", ".join(FUNCTIONS)


def parse(text: object, variables: Mapping[str, sp.Symbol], *, source: str = "<formula>",
          key: str = "expr", described: str | None = None) -> sp.Expr:
    """The sympy expression of `text`, a formula in `variables` (name -> symbol).

    Raises SpecError(source, key, ...) for anything outside the grammar in the module doc; its
    message says "a formula in <described>" (by default, the variables' names)."""
    try:
        return _parse(text, variables)
    except _Refused as exc:
        names = ", ".join(variables) if described is None else described
        raise SpecError(source, key, f"a formula in {names} ({exc})", text) from None


def _parse(text, variables):
    if not isinstance(text, str):
        raise _Refused("the formula must be a string")
    if len(text) > MAX_LENGTH:
        raise _Refused(f"at most {MAX_LENGTH} characters; this one has {len(text)}")
    bad = sorted(set(text) - ALLOWED_CHARACTERS)
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise _Refused(f"only letters, digits, spaces and _ . , + - * / ( ) may appear; "
                       f"found {shown}")
    if not text.strip():
        raise _Refused("the formula is empty")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise _Refused(f"not a valid formula: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError):
        raise _Refused("not a valid formula") from None
    expr, _ = _Builder(variables).walk(tree.body, 1)
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan, sp.I):
        raise _Refused("it is not a finite real formula")
    return expr


class _Builder:
    """Builds the expression bottom-up. `walk` returns (sympy expression, float value), the
    value being None unless the node is constant (no variables)."""

    def __init__(self, variables: Mapping[str, sp.Symbol]):
        self.variables = dict(variables)
        names = ", ".join(list(variables) + list(CONSTANTS))
        self.grammar = f"only numbers, {names}, + - * / ** and calls such as exp(...) are allowed"

    def walk(self, node: ast.AST, depth: int):
        if depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} deep")
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise _Refused(f"{_what(node)} is not allowed: {self.grammar}")
        return method(node, depth)

    def _Constant(self, node, depth):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Refused(f"{_what(node)} is not allowed: {self.grammar}")
        if abs(v) > MAX_LITERAL or not math.isfinite(v):  # (an int too big is not finite)
            raise _Refused(f"numbers must be finite and at most {MAX_LITERAL:g} in magnitude")
        exact = sp.Integer(v) if isinstance(v, int) else sp.Float(repr(v))
        return exact, float(v)

    def _Name(self, node, depth):
        if node.id in self.variables:
            return self.variables[node.id], None
        if node.id in CONSTANTS:
            make, value = CONSTANTS[node.id]
            return make(), value
        if node.id in FUNCTIONS:
            raise _Refused(f"the function {node.id!r} must be called, as in {node.id}(...)")
        allowed = ", ".join(list(self.variables) + list(CONSTANTS))
        raise _Refused(f"the name {node.id!r} is not allowed: use {allowed}, or call one of "
                       f"{_FUNCTION_LIST}")

    def _UnaryOp(self, node, depth):
        if not isinstance(node.op, (ast.UAdd, ast.USub)):
            raise _Refused(f"{_what(node)} is not allowed: {self.grammar}")
        e, v = self.walk(node.operand, depth + 1)
        if isinstance(node.op, ast.UAdd):
            return e, v
        return -e, (None if v is None else -v)

    def _BinOp(self, node, depth):
        if type(node.op) not in _BINARY:
            raise _Refused(f"{_what(node)} is not allowed: {self.grammar}")
        op, symbol = _BINARY[type(node.op)]
        a, av = self.walk(node.left, depth + 1)
        b, bv = self.walk(node.right, depth + 1)
        if symbol == "**" and bv is not None and abs(bv) > MAX_EXPONENT:
            raise _Refused(f"exponents must be at most {MAX_EXPONENT} in magnitude")
        value = None
        if av is not None and bv is not None:
            value = self._constant(lambda: op(av, bv))
        return op(a, b), value

    def _Call(self, node, depth):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            if isinstance(node.func, ast.Name):
                raise _Refused(f"the function {node.func.id!r} is not allowed: use one of "
                               f"{_FUNCTION_LIST}")
            raise _Refused(f"only functions called by their bare name are allowed "
                           f"({_FUNCTION_LIST}), not {_what(node.func)}")
        name = node.func.id
        arity, build, evaluate = FUNCTIONS[name]
        if node.keywords:
            raise _Refused(f"{name}() takes no keyword arguments")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _Refused(f"{name}() takes no *arguments")
        if len(node.args) != arity:
            raise _Refused(f"{name}() takes {arity} argument{'s' if arity > 1 else ''}, "
                           f"got {len(node.args)}")
        built = [self.walk(a, depth + 1) for a in node.args]
        value = None
        if all(v is not None for _, v in built):
            value = self._constant(lambda: evaluate(*(v for _, v in built)))
        return build(*(e for e, _ in built)), value

    @staticmethod
    def _constant(compute) -> float:
        try:
            value = compute()
        except (OverflowError, ZeroDivisionError, ValueError):
            value = None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Refused("a constant part is not a finite real number (overflow, division "
                           "by zero, or outside the function's domain)")
        return float(value)


_NODE_NAMES = {
    ast.Attribute: "attribute access (.name)",
    ast.Subscript: "subscripts ([...])",
    ast.Lambda: "lambda",
    ast.IfExp: "conditional expressions (if/else)",
    ast.Compare: "comparisons",
    ast.BoolOp: "and/or",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "*arguments",
    ast.Tuple: "tuples",
    ast.List: "lists",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.JoinedStr: "strings",
}


def _what(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return f"the constant {type(node.value).__name__} {node.value!r}"[:80]
    if isinstance(node, (ast.UnaryOp, ast.BinOp)):
        return f"the operator {type(node.op).__name__}"
    return _NODE_NAMES.get(type(node), type(node).__name__)
