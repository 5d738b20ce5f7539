"""The command line: `symnet compile` and `symnet inspect`.

Errors in the user's input are one line on stderr and exit status 2, with no traceback and
no file written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import sympy as sp

from . import __version__
from .compiler import MAX_SCALAR_PARAMS, build, write
from .errors import SymnetError, one_line
from .schedule import schedule
from .spec import DTYPES, MODES, STRATEGIES, TARGETS, load_spec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symnet", description="Compile an MLP spec (TOML) into a "
                                "standalone Numba module: forward, loss, grad, train_step, fit.")
    p.add_argument("--version", action="version", version=f"symnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="write DIR/<name>.py and print a summary")
    c.add_argument("spec", metavar="SPEC", help="the network spec (TOML)")
    c.add_argument("-o", "--out-dir", default=".", metavar="DIR",
                   help="where to write the module (default: the current directory)")
    c.add_argument("--strategy", choices=STRATEGIES, help="override [codegen] strategy")
    c.add_argument("--dtype", choices=DTYPES, help="override [codegen] dtype")
    c.add_argument("--mode", choices=MODES, help="override [codegen] mode")
    c.add_argument("--target", choices=TARGETS, help="write only this target's module (cpu: "
                   "DIR/<name>.py, cuda: DIR/<name>_cuda.py); default: [codegen] targets")

    i = sub.add_parser("inspect", help="print the forward and gradient formulas and the "
                       "store-versus-recompute figures")
    i.add_argument("spec", metavar="SPEC", help="the network spec (TOML)")
    i.add_argument("--latex", action="store_true", help="print the formulas as LaTeX")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "compile":
            return _compile(args)
        return _inspect(args)
    except SymnetError as exc:
        print(f"symnet: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `symnet inspect ... | head`: stop quietly
        # what is still buffered for stdout goes to /dev/null at exit, not into a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _compile(args) -> int:
    spec = load_spec(args.spec)
    targets = [args.target] if args.target else list(spec.codegen.targets)
    # every target is built before anything is written: an error writes nothing
    builds = [build(spec, strategy=args.strategy, dtype=args.dtype, mode=args.mode, target=t)
              for t in targets]
    compiled = builds[0]
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SymnetError(f"{out_dir}: expected a directory for -o/--out-dir")
    try:
        paths = [write(c, out_dir) for c in builds]
    except OSError as exc:
        raise SymnetError(f"{out_dir}: expected a writable directory for -o/--out-dir "
                          f"({exc.strerror or exc})") from None
    spec, sched = compiled.spec, compiled.schedule
    shapes = ", ".join(f"{k}{list(v)}" for k, v in spec.param_shapes().items())
    for path in paths:
        print(path)
    print(f"  network     {spec.network.inputs}-"
          + "-".join(str(layer.units) for layer in spec.network.layers)
          + f", {spec.n_params()} parameters ({shapes})")
    if sched is None:
        how = "np.dot per layer" if compiled.target == "cpu" else "per-thread layer loops"
        print(f"  form        loop ({how}), dtype {spec.codegen.dtype}")
        return 0
    c, b = sched.counts, sched.before_cse
    print(f"  form        scalar (unrolled), strategy {sched.strategy}, dtype {spec.codegen.dtype}")
    print(f"  ops/sample  before CSE: forward {b.forward_ops}, backward {b.backward_ops}; "
          f"after CSE: forward {c.forward_ops}, backward {c.backward_ops}")
    print(f"  stored      {c.temporaries} temporaries per sample")
    return 0


def _inspect(args) -> int:
    spec = load_spec(args.spec)
    # built with store whatever the spec says: the recompute form may be refused for this
    # network, and then its row of the table says why instead of the whole command failing
    # the scalar form's formulas wherever the network fits it; the loop form's beyond
    fits = spec.n_params() <= MAX_SCALAR_PARAMS
    compiled = build(spec, strategy="store", mode="scalar" if fits else "loop")
    prog = compiled.program

    def show(a):
        eq = sp.Eq(a.lhs, a.rhs, evaluate=False)
        return sp.latex(eq) if args.latex else sp.pretty(eq, use_unicode=False)

    if compiled.mode == "loop":
        return _inspect_loop(spec, prog, show)

    print(f"# {spec.name}: forward (one sample)")
    for a in prog.forward:
        print(show(a))
    print()
    print("# backward (reverse mode, the lecture's deltas)")
    for a in prog.backward:
        print(show(a))
    print()
    rows = [("store", compiled.schedule)]
    try:
        rows.append(("recompute", schedule(prog, "recompute")))
    except SymnetError as exc:
        rows.append(("recompute", str(exc)))
    print("# store versus recompute (sympy.count_ops per sample)")
    print(f"{'strategy':<10} {'forward ops':>12} {'backward ops':>13} {'total':>8} {'stored':>7}")
    for label, s in rows:
        if isinstance(s, str):
            print(f"{label:<10} n/a: {s}")
            continue
        c = s.counts
        print(f"{label:<10} {c.forward_ops:>12} {c.backward_ops:>13} {c.total_ops:>8} "
              f"{c.temporaries:>7}")
    return 0


def _inspect_loop(spec, prog, show) -> int:
    """The loop form: matrix products plus the elementwise formulas, per layer."""
    from types import SimpleNamespace as Row

    from .loop import OUT

    print(f"# {spec.name}: loop form ({spec.n_params()} parameters); z = net, y = out")
    for L in prog.layers[:-1]:
        src = "x" if L.number == 1 else f"out{L.number - 1}"
        print(f"# layer {L.number}: net{L.number} = {src} @ W{L.number}.T"
              + ("" if L.bias == "none" else f" + b{L.number}"))
        print(show(Row(lhs=OUT, rhs=L.out)))
        print(show(Row(lhs=sp.Symbol("dy/dz"), rhs=L.derivative)))
        print(f"# backward: delta{L.number} = (delta{L.number + 1} @ W{L.number + 1}) * dy/dz")
    last = prog.layers[-1]
    print(f"# layer {last.number} (output), one sample: the loss and delta_k = dE/dnet_k, "
          f"derived by reverse mode")
    for a in prog.output.grad_steps:
        print(show(a))
    return 0
