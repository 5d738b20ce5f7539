"""Stage 1: a TOML spec becomes a validated, frozen `Spec`.

Every key is checked; unknown keys, wrong types and impossible values raise `SpecError`
naming the file, the dotted key and what was expected. Nothing here knows about sympy or
Numba: later stages take a `Spec` and never read TOML again.
"""

from __future__ import annotations

import hashlib
import keyword
import math
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import TARGETS  # [codegen] targets: the backends' names
from .errors import SpecError
from .functions import ACTIVATIONS, CUSTOM, LOSSES, parse_activation, parse_loss
from .residuals import (
    RESIDUALS,
    check_differentiable,
    check_formula,
    check_names,
    default_input_names,
    default_output_names,
    reserved_names,
)
from .strategy import STRATEGY_FORMS, parse_strategy

BIAS_KINDS = ("per_unit", "shared", "none")
REDUCTIONS = ("mean", "sum")
OPTIMIZERS = ("sgd", "adam")
DECAYS = ("step", "exponential")
UPDATE_GROUPS = ("weights", "biases")
INIT_SCHEMES = ("normal_0.01", "uniform_fan_in", "xavier_uniform", "xavier_normal", "he_normal",
                "he_uniform")
LOSS_KINDS = (*LOSSES, CUSTOM, RESIDUALS)
RESIDUAL_KEYS = ("terms", "inputs", "outputs")  # the keys of [loss] only "residuals" takes
DTYPES = ("float32", "float64")
STRATEGIES = ("store", "recompute")  # and "checkpoint:K", "budget:N": see strategy.py
MODES = ("auto", "scalar", "loop")

# `name` becomes the generated module's file name and its name in sys.modules: keep it short
# enough for any file system, and never the name of a module the process may already use.
MAX_NAME_LENGTH = 100
RESERVED_NAMES = frozenset(sys.stdlib_module_names) | {
    "symnet", "numpy", "numba", "llvmlite", "sympy", "scipy", "jinja2",
    "markupsafe", "mpmath",
}
# Sanity bound on network.inputs and units (the compiler's own size limit is far lower; this
# one only keeps absurd integers out of the arithmetic and the messages).
MAX_UNITS = 1_000_000
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class Activation:
    name: str  # a registry name, or "custom" for a formula
    params: tuple[tuple[str, float], ...] = ()
    expr: str = ""  # the formula in x of a custom activation

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    def describe(self) -> str:
        if self.name == CUSTOM:
            return f"{CUSTOM}({self.expr})"
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({inner})"


@dataclass(frozen=True)
class Layer:
    units: int
    activation: Activation
    bias: str = "per_unit"


@dataclass(frozen=True)
class Network:
    inputs: int
    layers: tuple[Layer, ...]

    @property
    def outputs(self) -> int:
        return self.layers[-1].units


@dataclass(frozen=True)
class LossTerm:
    """One term of a "residuals" loss: weight * reduce over the points `points` of
    residual^2 (the formula's text; symnet/residuals.py parses it)."""

    name: str
    points: str
    weight: float
    residual: str


@dataclass(frozen=True)
class Loss:
    kind: str = "sse"
    reduction: str = "mean"
    expr: str = ""  # the per-unit formula in y and t of kind "custom"
    weight_decay: float = 0.0  # lambda: lambda * sum of the weights squared joins the batch loss
    # kind "residuals": its terms, and the names of the inputs and outputs in their formulas
    # (the defaults filled in); empty for every other kind
    terms: tuple[LossTerm, ...] = ()
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Training:
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    update: tuple[str, ...] = ("weights", "biases")
    momentum: float = 0.0  # sgd: v = momentum*v + g; p -= lr*v (PyTorch's convention)
    nesterov: bool = False  # sgd with momentum: p -= lr*(g + momentum*v)
    beta1: float = 0.9  # adam
    beta2: float = 0.999  # adam
    eps: float = 1e-8  # adam
    # learning-rate decay per epoch of fit: () | ("step", every, factor) | ("exponential", rate)
    decay: tuple = ()


@dataclass(frozen=True)
class Init:
    scheme: str = "uniform_fan_in"
    seed: int = 0
    # explicit values, by parameter name, as nested tuples (hashable, frozen)
    values: tuple[tuple[str, Any], ...] = ()

    @property
    def explicit(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Codegen:
    dtype: str = "float64"
    strategy: str = "store"
    mode: str = "auto"  # "scalar" (unrolled), "loop" (per-layer loops and np.dot) or "auto"
    targets: tuple[str, ...] = ("cpu",)  # the modules `symnet compile` writes
    # the scalar form's jacobian, input_grad and hvp kernels (symnet/tangent.py): derived only
    # when asked, as they cost sympy time at every build (the loop form always has them)
    derivatives: bool = False


@dataclass(frozen=True)
class Spec:
    name: str
    network: Network
    loss: Loss = field(default_factory=Loss)
    training: Training = field(default_factory=Training)
    init: Init = field(default_factory=Init)
    codegen: Codegen = field(default_factory=Codegen)
    source: str = "<dict>"  # file the spec came from (for messages and the module header)
    sha256: str = ""  # of the file's bytes, or of the canonical dict

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names and shapes in order W1, b1, W2, b2, ... (absent biases left out)."""
        shapes: dict[str, tuple[int, ...]] = {}
        units_in = self.network.inputs
        for ln, layer in enumerate(self.network.layers, start=1):
            shapes[f"W{ln}"] = (layer.units, units_in)
            if layer.bias == "per_unit":
                shapes[f"b{ln}"] = (layer.units,)
            elif layer.bias == "shared":
                shapes[f"b{ln}"] = ()
            units_in = layer.units
        return shapes

    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    def updated_params(self) -> tuple[str, ...]:
        groups = set(self.training.update)
        return tuple(
            n
            for n in self.param_shapes()
            if (n.startswith("W") and "weights" in groups)
            or (n.startswith("b") and "biases" in groups)
        )

    def replace_codegen(self, **changes: str) -> Spec:
        from dataclasses import replace

        for key, value in changes.items():
            if key == "strategy":
                _strategy(_Validator(self.source), value)
                continue
            allowed = {"dtype": DTYPES, "mode": MODES}[key]
            if value not in allowed:
                raise SpecError(self.source, f"codegen.{key}", _one_of(allowed), value)
        return replace(self, codegen=replace(self.codegen, **changes))


# ----------------------------------------------------------------------------------------
# loading


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file."""
    path = Path(path)
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(label, "", "a readable TOML file", exc.strerror, has_got=True) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(label, "", f"UTF-8 text (byte {exc.start} is not valid UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(label, "", f"valid TOML ({exc})") from None
    except RecursionError:
        raise SpecError(label, "", "valid TOML (arrays or tables nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits()
        raise SpecError(label, "", f"valid TOML ({exc})") from None
    return spec_from_dict(data, source=label, sha256=hashlib.sha256(raw).hexdigest())


def spec_from_dict(
    data: Mapping[str, Any], source: str = "<dict>", sha256: str | None = None
) -> Spec:
    """Validate a spec given as a dict (the parsed TOML)."""
    v = _Validator(source)
    top = v.table(data, "", required=("name", "network", "loss"),
                  optional=("training", "init", "codegen"))
    name = v.module_name(top["name"], "name")
    network = _network(v, top["network"])
    loss = _loss(v, top["loss"], network)
    training = _training(v, top.get("training", {}))
    codegen = _codegen(v, top.get("codegen", {}))
    proto = Spec(name=name, network=network, loss=loss, training=training, codegen=codegen,
                 source=source)
    if loss.kind == RESIDUALS:  # the layers against the derivatives the terms use
        check_differentiable(proto)
    init = _init(v, top.get("init", {}), proto.param_shapes())
    if sha256 is None:  # only once valid: every value is then bounded and printable
        sha256 = hashlib.sha256(repr(_canonical(data)).encode()).hexdigest()
    from dataclasses import replace

    return replace(proto, init=init, sha256=sha256)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _one_of(options) -> str:
    return "one of " + ", ".join(f'"{o}"' for o in options)


class _Validator:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, expected: str, got: object = None, **kw):
        raise SpecError(self.source, key, expected, got, **kw)

    def table(self, value, key, required=(), optional=()):
        if not isinstance(value, Mapping):
            self.fail(key or "<top level>", "a table", value)
        for k in value:
            if k not in required and k not in optional:
                allowed = ", ".join(list(required) + list(optional))
                self.fail(_join(key, k), f"no such key (allowed here: {allowed})")
        for k in required:
            if k not in value:
                self.fail(_join(key, k), "this key to be present (it is required)")
        return value

    def integer(self, value, key, minimum=None, maximum=None):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "an integer", value)
        if maximum is not None and value > maximum:
            self.fail(key, f"an integer <= {maximum}", value)
        if minimum is not None and value < minimum:
            self.fail(key, f"an integer >= {minimum}", value)
        return value

    def number(self, value, key, positive=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, "a number", value)
        if not _finite(value):
            self.fail(key, "a finite number", value)
        if positive and value <= 0:
            self.fail(key, "a positive number", value)
        return float(value)

    def choice(self, value, key, options):
        if not isinstance(value, str) or value not in options:
            self.fail(key, _one_of(options), value)
        return value

    def identifier(self, value, key):
        if not isinstance(value, str) or not value.isidentifier() or not value.isascii() \
                or keyword.iskeyword(value) or value.startswith("_"):
            self.fail(key, "a Python identifier (ASCII letters, digits, underscores; not a "
                           "keyword; not starting with '_')", value)
        return value

    def module_name(self, value, key):
        self.identifier(value, key)
        if len(value) > MAX_NAME_LENGTH:
            self.fail(key, f"at most {MAX_NAME_LENGTH} characters (it names the generated "
                           f"file; this one has {len(value)})")
        if value in RESERVED_NAMES:
            self.fail(key, "a name that is not a standard-library or dependency module (it "
                           "becomes the generated module's name)", value)
        return value


def check_module_name(name: object, source: str = "<spec>") -> str:
    """`name` if it can name a generated module (an ASCII identifier, not a keyword, not
    private, not a reserved module, at most MAX_NAME_LENGTH long); else SpecError on `name`.
    The name becomes a file name, so this also keeps the file inside its directory."""
    return _Validator(source).module_name(name, "name")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _join(prefix: str, key: object) -> str:
    """The dotted key `prefix.key`, quoting a key TOML would quote and shortening a long one."""
    text = str(key)
    if not _BARE_KEY.fullmatch(text):
        text = repr(text if len(text) <= 40 else text[:37] + "...")
    elif len(text) > 40:
        text = text[:37] + "..."
    return f"{prefix}.{text}" if prefix else text


def _finite(x) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an int too large for a float
        return False


def _network(v: _Validator, raw) -> Network:
    t = v.table(raw, "network", required=("inputs", "layers"))
    inputs = v.integer(t["inputs"], "network.inputs", minimum=1, maximum=MAX_UNITS)
    layers_raw = t["layers"]
    if not isinstance(layers_raw, list) or not layers_raw:
        v.fail("network.layers", "a non-empty array of tables ([[network.layers]])", layers_raw)
    layers = []
    for i, lr in enumerate(layers_raw):
        key = f"network.layers[{i}]"
        lt = v.table(lr, key, required=("units", "activation"), optional=("bias",))
        units = v.integer(lt["units"], f"{key}.units", minimum=1, maximum=MAX_UNITS)
        act = _activation(v, lt["activation"], f"{key}.activation")
        bias = v.choice(lt.get("bias", "per_unit"), f"{key}.bias", BIAS_KINDS)
        if act.name in ACTIVATIONS and ACTIVATIONS[act.name].layer_wide:
            if i != len(layers_raw) - 1:
                v.fail(f"{key}.activation", f"{act.name!r} only on the output (last) layer (each "
                                            f"of its outputs depends on every net of the layer)")
            if units < 2:
                v.fail(f"{key}.units", f"at least 2 units in a {act.name} layer", units)
        layers.append(Layer(units=units, activation=act, bias=bias))
    return Network(inputs=inputs, layers=tuple(layers))


def _activation(v: _Validator, raw, key: str) -> Activation:
    if isinstance(raw, str):
        name, given = raw, {}
    elif isinstance(raw, Mapping):
        if "expr" in raw:
            return _custom_activation(v, raw, key)
        if "name" not in raw:
            v.fail(f"{key}.name", "this key to be present (the activation's name), or an expr "
                                  "key with a formula in x")
        name, given = raw["name"], {k: x for k, x in raw.items() if k != "name"}
    else:
        v.fail(key, "an activation name, an inline table { name = ..., ... } or "
                    "{ expr = \"<formula in x>\" }", raw)
    v.choice(name, key if isinstance(raw, str) else f"{key}.name", tuple(ACTIVATIONS))
    entry = ACTIVATIONS[name]
    params = []
    for pname in given:
        if pname not in entry.params:
            allowed = ", ".join(entry.params) or "none"
            v.fail(_join(key, pname), f"no such parameter of {name} (allowed: {allowed})")
    for pname, default in entry.params.items():
        params.append((pname, v.number(given.get(pname, default), f"{key}.{pname}")))
    return Activation(name=name, params=tuple(params))


def _custom_activation(v: _Validator, raw, key: str) -> Activation:
    for k in raw:
        if k != "expr":
            v.fail(_join(key, k), "no such key beside expr (a custom activation is "
                                  "{ expr = \"<formula in x>\" } alone)")
    text = raw["expr"]
    parse_activation(text, v.source, f"{key}.expr")  # refuses anything but a formula in x
    return Activation(name=CUSTOM, expr=text.strip())


def _loss(v: _Validator, raw, network: Network) -> Loss:
    t = v.table(raw, "loss", required=("kind",),
                optional=("reduction", "expr", "weight_decay", *RESIDUAL_KEYS))
    kind = v.choice(t["kind"], "loss.kind", LOSS_KINDS)
    reduction = v.choice(t.get("reduction", "mean"), "loss.reduction", REDUCTIONS)
    expr = ""
    if kind == CUSTOM:
        if "expr" not in t:
            v.fail("loss.expr", "this key to be present (kind = \"custom\" takes its formula "
                                "in y and t here)")
        parse_loss(t["expr"], v.source, "loss.expr")  # refuses anything but a formula
        expr = t["expr"].strip()
    elif "expr" in t:
        why = "its formulas are the residual of each [[loss.terms]]" if kind == RESIDUALS \
            else "only kind = \"custom\" takes a formula"
        v.fail("loss.expr", f"no expr for loss {kind!r} ({why})")
    extra = {}
    if kind == RESIDUALS:
        extra = _residual_terms(v, t, network)
    else:
        for key in RESIDUAL_KEYS:
            if key in t:
                v.fail(f"loss.{key}", f"no {key} for loss {kind!r} (only kind = "
                                      f"\"{RESIDUALS}\" takes terms, inputs and outputs)")
    decay = v.number(t.get("weight_decay", 0.0), "loss.weight_decay")
    if decay < 0:
        v.fail("loss.weight_decay", "a number >= 0", t["weight_decay"])
    needs = LOSSES[kind].requires_output if kind in LOSSES else None
    last = network.layers[-1].activation.name
    if needs and last != needs:
        v.fail("loss.kind", f"a {needs} output layer for loss {kind!r} "
                            f"(the last layer's activation is {last!r})")
    return Loss(kind=kind, reduction=reduction, expr=expr, weight_decay=decay, **extra)


def _residual_terms(v: _Validator, t, network: Network) -> dict[str, tuple]:
    """The terms, input_names and output_names of a "residuals" loss, each formula parsed."""
    inputs = _residual_names(v, t, "inputs", network.inputs,
                             default_input_names(network.inputs), ())
    outputs = _residual_names(v, t, "outputs", network.outputs,
                              default_output_names(network.outputs), inputs)
    clash = check_names(inputs, outputs)
    if clash:
        key, j, why = clash
        v.fail(f"loss.{key}[{j}]", why, (inputs, outputs)[key == "outputs"][j])
    if "terms" not in t:
        v.fail("loss.terms", f"this key to be present (kind = \"{RESIDUALS}\" takes its "
                             f"terms as [[loss.terms]] tables)")
    raw = t["terms"]
    if not isinstance(raw, list) or not raw:
        v.fail("loss.terms", "a non-empty array of tables ([[loss.terms]])", raw)
    terms, seen = [], {}
    for k, tr in enumerate(raw):
        key = f"loss.terms[{k}]"
        tt = v.table(tr, key, required=("name", "points", "residual"), optional=("weight",))
        name = v.identifier(tt["name"], f"{key}.name")
        if name in seen:
            v.fail(f"{key}.name", f"a name no other term has (loss.terms[{seen[name]}] has "
                                  f"it too)", name)
        seen[name] = k
        points = v.identifier(tt["points"], f"{key}.points")
        weight = v.number(tt.get("weight", 1.0), f"{key}.weight", positive=True)
        check_formula(tt["residual"], inputs, outputs, source=v.source, key=f"{key}.residual")
        terms.append(LossTerm(name=name, points=points, weight=weight,
                              residual=tt["residual"].strip()))
    return {"terms": tuple(terms), "input_names": inputs, "output_names": outputs}


def _residual_names(v: _Validator, t, key: str, count: int, default: tuple[str, ...],
                    taken: tuple[str, ...]) -> tuple[str, ...]:
    """loss.inputs or loss.outputs: `count` distinct identifiers, none a name the formulas
    give a constant or a function, none in `taken` (the inputs, for the outputs)."""
    where = f"loss.{key}"
    if key not in t:
        taken_set = set(taken)
        clash = [n for n in default if n in taken_set]
        if clash:
            v.fail(where, f"this key to be present: the {key}' default name {clash[0]!r} is "
                          f"also one of loss.inputs")
        return default
    raw = t[key]
    one = key[:-1]
    if not isinstance(raw, list) or len(raw) != count:
        v.fail(where, f"an array of {count} name{'s' if count > 1 else ''}, one per network "
                      f"{one}", raw)
    reserved = reserved_names()
    names: dict[str, str] = {n: f"loss.inputs[{j}]" for j, n in enumerate(taken)}
    for j, name in enumerate(raw):
        v.identifier(name, f"{where}[{j}]")
        if name in reserved:
            v.fail(f"{where}[{j}]", f"a name that is not a constant or function of the "
                                    f"formulas ({', '.join(reserved)})", name)
        if name in names:
            v.fail(f"{where}[{j}]", f"a name no other input or output has ({names[name]} has "
                                    f"it too)", name)
        names[name] = f"{where}[{j}]"
    return tuple(raw)


def _training(v: _Validator, raw) -> Training:
    if not isinstance(raw, Mapping):
        v.fail("training", "a table", raw)
    opt = v.choice(raw.get("optimizer", "sgd"), "training.optimizer", OPTIMIZERS)
    own = {"sgd": ("momentum", "nesterov"), "adam": ("beta1", "beta2", "eps")}[opt]
    t = v.table(raw, "training",
                optional=("optimizer", "learning_rate", "update", "lr_decay") + own)
    lr = v.number(t.get("learning_rate", 0.1), "training.learning_rate", positive=True)
    update = t.get("update", list(UPDATE_GROUPS))
    if not isinstance(update, list) or not all(isinstance(u, str) for u in update):
        v.fail("training.update", 'an array of "weights" and/or "biases"', update)
    for i, u in enumerate(update):
        v.choice(u, f"training.update[{i}]", UPDATE_GROUPS)
    extra: dict[str, Any] = {}
    if opt == "sgd":
        extra["momentum"] = _fraction(v, t.get("momentum", 0.0), "training.momentum", closed=True)
        nesterov = t.get("nesterov", False)
        if not isinstance(nesterov, bool):
            v.fail("training.nesterov", "true or false", nesterov)
        if nesterov and extra["momentum"] == 0:
            v.fail("training.nesterov", "a momentum > 0 alongside nesterov = true")
        extra["nesterov"] = nesterov
    else:
        extra["beta1"] = _fraction(v, t.get("beta1", 0.9), "training.beta1")
        extra["beta2"] = _fraction(v, t.get("beta2", 0.999), "training.beta2")
        extra["eps"] = v.number(t.get("eps", 1e-8), "training.eps", positive=True)
    if "lr_decay" in t:
        extra["decay"] = _decay(v, t["lr_decay"])
    return Training(optimizer=opt, learning_rate=lr, update=tuple(dict.fromkeys(update)),
                    **extra)


def _fraction(v: _Validator, value, key: str, closed: bool = False) -> float:
    x = v.number(value, key)
    if not (0 <= x < 1 if closed else 0 < x < 1):
        v.fail(key, "a number in [0, 1)" if closed else "a number in (0, 1)", value)
    return x


def _decay(v: _Validator, raw) -> tuple:
    key = "training.lr_decay"
    if not isinstance(raw, Mapping) or "kind" not in raw:
        v.fail(key, 'an inline table { kind = "step", every = N, factor = f } or '
                    '{ kind = "exponential", rate = r }', raw)
    kind = v.choice(raw["kind"], f"{key}.kind", DECAYS)
    if kind == "step":
        t = v.table(raw, key, required=("kind", "every", "factor"))
        every = v.integer(t["every"], f"{key}.every", minimum=1)
        return ("step", every, _positive_at_most_one(v, t["factor"], f"{key}.factor"))
    t = v.table(raw, key, required=("kind", "rate"))
    return ("exponential", _positive_at_most_one(v, t["rate"], f"{key}.rate"))


def _positive_at_most_one(v: _Validator, value, key: str) -> float:
    x = v.number(value, key, positive=True)
    if x > 1:
        v.fail(key, "a number in (0, 1]", value)
    return x


def _codegen(v: _Validator, raw) -> Codegen:
    t = v.table(raw, "codegen",
                optional=("dtype", "strategy", "mode", "targets", "derivatives"))
    derivatives = t.get("derivatives", False)
    if not isinstance(derivatives, bool):
        v.fail("codegen.derivatives", "true or false", derivatives)
    return Codegen(dtype=v.choice(t.get("dtype", "float64"), "codegen.dtype", DTYPES),
                   strategy=_strategy(v, t.get("strategy", "store")),
                   mode=v.choice(t.get("mode", "auto"), "codegen.mode", MODES),
                   targets=_targets(v, t.get("targets", ["cpu"])),
                   derivatives=derivatives)


def _targets(v: _Validator, raw) -> tuple[str, ...]:
    expected = f"a non-empty list of distinct targets, each {_one_of(TARGETS)}"
    if not isinstance(raw, list) or not raw or len(set(map(repr, raw))) != len(raw):
        v.fail("codegen.targets", expected, raw)
    for target in raw:
        if not isinstance(target, str) or target not in TARGETS:
            v.fail("codegen.targets", expected, raw)
    return tuple(raw)


def _strategy(v: _Validator, value) -> str:
    """store, recompute, checkpoint:K, checkpoint:sqrt, budget:N or budget:SIZE."""
    try:
        parse_strategy(value)
    except ValueError as exc:
        expected = str(exc) if str(exc) != STRATEGY_FORMS else f"one of {STRATEGY_FORMS}"
        v.fail("codegen.strategy", expected, value)
    return value


def _init(v: _Validator, raw, shapes: dict[str, tuple[int, ...]]) -> Init:
    if not isinstance(raw, Mapping):
        v.fail("init", "a table", raw)
    scheme = v.choice(raw.get("scheme", "uniform_fan_in"), "init.scheme", INIT_SCHEMES)
    seed = v.integer(raw.get("seed", 0), "init.seed", minimum=0, maximum=MAX_SEED)
    values = []
    for k, val in raw.items():
        if k in ("scheme", "seed"):
            continue
        if k not in shapes:
            names = ", ".join(list(shapes) + ["scheme", "seed"])
            v.fail(_join("init", k), f"no such key (allowed here: {names})")
        values.append((k, _array_value(v, val, f"init.{k}", shapes[k])))
    return Init(scheme=scheme, seed=seed, values=tuple(values))


def _describe_shape(shape: tuple[int, ...]) -> str:
    if shape == ():
        return "a number (shape ())"
    if len(shape) == 1:
        return f"an array of {shape[0]} numbers (shape {shape})"
    return f"an array of {shape[0]} arrays of {shape[1]} numbers (shape {shape})"


def _array_value(v: _Validator, value, key: str, shape: tuple[int, ...]):
    def walk(x, dims):
        if not dims:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not _finite(x):
                raise ValueError
            return float(x)
        if not isinstance(x, list) or len(x) != dims[0]:
            raise ValueError
        return tuple(walk(e, dims[1:]) for e in x)

    try:
        return walk(value, shape)
    except ValueError:
        v.fail(key, _describe_shape(shape), value)
