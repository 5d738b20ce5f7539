"""The command line: `symnet compile` and `symnet inspect`.

Errors in the user's input are one line on stderr and exit status 2, with no traceback and
no file written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, backends, sweep
from .compiler import MAX_SCALAR_PARAMS, build, write
from .errors import SymnetError, one_line
from .spec import DTYPES, MODES, TARGETS, load_spec


def _strategy(text: str) -> str:
    from .strategy import STRATEGY_FORMS, is_strategy

    if not is_strategy(text):
        raise argparse.ArgumentTypeError(f"expected {STRATEGY_FORMS}, got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symnet", description="Compile an MLP spec (TOML) into a "
                                "standalone Numba module: forward, loss, grad, train_step, fit.")
    p.add_argument("--version", action="version", version=f"symnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="write DIR/<name>.py and print a summary")
    c.add_argument("spec", metavar="SPEC", help="the network spec (TOML)")
    c.add_argument("-o", "--out-dir", default=".", metavar="DIR",
                   help="where to write the module (default: the current directory)")
    c.add_argument("--strategy", type=_strategy, metavar="STRATEGY",
                   help="override [codegen] strategy: store, recompute, checkpoint:K, "
                   "checkpoint:sqrt, budget:N or budget:SIZE (e.g. 64KB)")
    c.add_argument("--dtype", choices=DTYPES, help="override [codegen] dtype")
    c.add_argument("--mode", choices=MODES, help="override [codegen] mode")
    c.add_argument("--target", choices=TARGETS, help="write only this target's module (cpu: "
                   "DIR/<name>.py, cuda: DIR/<name>_cuda.py); default: [codegen] targets")

    i = sub.add_parser("inspect", help="print the forward and gradient formulas and the "
                       "store-versus-recompute figures")
    i.add_argument("spec", metavar="SPEC", help="the network spec (TOML)")
    i.add_argument("--latex", action="store_true", help="print the formulas as LaTeX")
    i.add_argument("--tradeoff", action="store_true", help="print the loop form's memory "
                   "versus compute table (store, checkpoints, budgets, recompute)")
    i.add_argument("--plot", metavar="FILE.png", help="draw memory against compute for every "
                   "strategy (needs matplotlib)")
    _add_teaching_commands(sub)
    sweep.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "compile":
            return _compile(args)
        if args.command == "sweep":
            return sweep.run(args)
        if args.command in _TEACHING_COMMANDS:
            return _TEACHING_COMMANDS[args.command](args)
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
    if compiled.mode == "residuals":
        sets = ", ".join(f'"{p}"' for p in dict.fromkeys(t.points for t in spec.loss.terms))
        print(f"  form        residuals ({len(spec.loss.terms)} terms on the points {sets}: "
              f"derivative channels through the layers), dtype {spec.codegen.dtype}")
        for name, _ in compiled.kernels:
            print(f"  imports     {out_dir / name}.py (_gemm, for the products of narrow layers; "
                  f"keep it beside the module)")
        return 0
    if sched is None:
        backend = backends.get(compiled.target)
        print(f"  form        loop ({backend.loop_form(spec)}), dtype {spec.codegen.dtype}")
        if compiled.kernel_info is not None:
            print(f"  kernels     {out_dir / compiled.kernel_info.name}.py (shared by every "
                  f"network of these kinds: Numba compiles it once)")
        # a schedule: only a backend with schedules gets here (check_target); its module's plan
        if spec.codegen.strategy != "store":
            s = backend.plan_summary(spec, backend.network_plan(spec, compiled.kernel_info))
            print(f"  schedule    {spec.codegen.strategy} ({s.schedule}): "
                  f"{s.forward_steps} layer evaluations ({s.recomputations} recomputed), "
                  f"{s.stored_bytes_per_sample} bytes stored per sample "
                  f"({s.peak_bytes_per_sample} with the deltas)")
        return 0
    c, b = sched.counts, sched.before_cse
    print(f"  form        scalar (unrolled), strategy {sched.cse}, dtype {spec.codegen.dtype}")
    print(f"  ops/sample  before CSE: forward {b.forward_ops}, backward {b.backward_ops}; "
          f"after CSE: forward {c.forward_ops}, backward {c.backward_ops}")
    print(f"  stored      {c.temporaries} temporaries per sample")
    return 0


def _inspect(args) -> int:
    import sympy as sp  # here, not at the top: the other commands start without sympy

    from .schedule import schedule

    spec = load_spec(args.spec)
    if spec.loss.kind == "residuals":
        if args.tradeoff or args.plot:
            raise SymnetError(f"{spec.source}: --tradeoff and --plot: not for a residual loss "
                              f"(its module stores every channel)")
        return _inspect_residuals(spec, args)
    if args.tradeoff or args.plot:
        return _tradeoff(spec, args)
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

    import sympy as sp

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


def _inspect_residuals(spec, args) -> int:
    """A residual loss: per set of points, the derivative channels it carries and, layer by
    layer, the formulas of each channel of out in the channels of net (the jet map, derived
    by sympy); then each term's residual and its derivatives by the symbols it uses."""
    import sympy as sp

    from .jets import COMBINED, activation_jets, channels_for, describe_combination
    from .residuals import point_sets, residual_terms

    def show(lhs, rhs):
        eq = sp.Eq(sp.Symbol(lhs), rhs, evaluate=False)
        return sp.latex(eq) if args.latex else sp.pretty(eq, use_unicode=False)

    names = spec.loss.input_names

    def channel(c: str, ch) -> str:  # d0d1 -> d/dx d/dy, as the comments say it
        if c == COMBINED:
            return describe_combination(ch, names)
        return c if c == "v" else " ".join(f"d/d{names[int(i)]}" for i in c[1:].split("d"))

    terms = residual_terms(spec)
    print(f"# {spec.name}: residual loss, E = sum over terms of weight * {spec.loss.reduction} "
          f"over its points of residual^2; n_c, a_c: a layer's net and out on channel c "
          f"(v: the values)")
    for name, derivatives in point_sets(spec).items():
        ch = channels_for(derivatives, [t for t in terms if t.points == name])
        print(f"\n## points \"{name}\": channels "
              + ", ".join(f"{c} ({channel(c, ch)})" if c != "v" else "v" for c in ch.names()))
        if ch.combination:
            print(f"# the terms read the second derivatives only as dd = "
                  f"{describe_combination(ch, names)}: one channel for them")
        for number, layer in enumerate(spec.network.layers, start=1):
            jm = activation_jets(layer.activation, ch)
            src = "x" if number == 1 else f"a{number - 1}"
            print(f"# layer {number} ({layer.activation.describe()}): n_c = {src}_c @ "
                  f"W{number}.T" + ("" if layer.bias == "none" else f" (+ b{number} for v)"))
            for c, e in jm.forward:
                print(show(f"a_{c}", e))
        for t in terms:
            if t.points != name:
                continue
            print(f"# term {t.name} (weight {t.weight!r}): residual and its derivatives")
            print(show("r", t.expr))
            for sym, _ in t.uses:
                print(show(f"dr/d{sym.name}", sp.diff(t.expr, sym)))
    return 0


def _tradeoff(spec, args) -> int:
    """Stored bytes and FLOPs per sample of the loop form's backward pass, per strategy."""
    import numpy as np

    from . import checkpoint
    from .loop import lower_loop

    program = lower_loop(spec)
    shape = (checkpoint.widths(spec), checkpoint.with_net(program),
             np.dtype(spec.codegen.dtype).itemsize)
    names = list(checkpoint.TRADEOFF_STRATEGIES)
    if spec.codegen.strategy not in names:
        names.insert(1, spec.codegen.strategy)
    try:
        plans = checkpoint.tradeoff(*shape, strategies=names)
    except ValueError as exc:
        raise SymnetError(f"{spec.source}: codegen.strategy: expected {exc}") from None
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SymnetError("--plot needs matplotlib (pip install 'symnet[plot]')") from None
        try:
            checkpoint.plot(plans, checkpoint.frontier(*shape), args.plot,
                            title=f"{spec.name}: store versus recompute")
        except OSError as exc:
            raise SymnetError(f"{args.plot}: expected a writable file for --plot "
                              f"({exc.strerror or exc})") from None
    runs: list[list[int]] = []
    for w in shape[0]:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    layers = "-".join(f"{w}" if k == 1 else f"{w}x{k}" for w, k in runs)
    print(f"# {spec.name} ({layers}, {spec.codegen.dtype}): the loop form's backward pass "
          f"per strategy; bytes and FLOPs per sample")
    for line in checkpoint.table(plans):
        print(line)
    if args.plot:
        print(f"# plot: {args.plot}")
    return 0
# -- symnet explain, symnet train ------------------------------------------------------------


def _add_teaching_commands(sub) -> None:
    e = sub.add_parser("explain", help="print the worked example of one sample, with numbers: "
                       "nets, outs, errors, every chain rule and the updated weights")
    e.add_argument("spec", metavar="SPEC", help="the network spec (TOML)")
    e.add_argument("--input", required=True, nargs="+", type=float, metavar="X",
                   help="the sample's inputs, one number per input")
    e.add_argument("--target", required=True, nargs="+", type=float, metavar="T",
                   help="the sample's targets, one number per output")
    e.add_argument("--lr", type=float, help="learning rate of the step (default: the spec's)")
    e.add_argument("--latex", action="store_true", help="write the same as LaTeX (align*)")
    e.add_argument("--digits", type=int, default=9, help="decimals shown (default 9)")
    e.add_argument("-o", "--out-dir", metavar="DIR", help="where the compiled modules go "
                   "(default: the cache directory)")

    t = sub.add_parser("train", help="train a spec on an .npz file of X and T, with a "
                       "progress bar; save the trace and plot it")
    t.add_argument("spec", metavar="SPEC", help="the network spec (TOML)")
    t.add_argument("--data", required=True, metavar="FILE.npz",
                   help="arrays X (samples, inputs) and T (samples, outputs)")
    t.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    t.add_argument("--lr", type=float, help="learning rate (default: the spec's)")
    t.add_argument("--batch-size", type=int, help="minibatch size (default: full batch)")
    t.add_argument("--seed", type=int, help="seed of the initialisation and the minibatch "
                   "shuffling (default: the spec's [init] seed, and 0 for the shuffling)")
    t.add_argument("--trace-out", metavar="FILE.npz", help="save the trace: loss, grad_norm "
                   "and each parameter per epoch")
    t.add_argument("--params-out", metavar="FILE.npz", help="save the trained parameters")
    t.add_argument("--save", metavar="FILE.npz", help="save the trained parameters and the "
                   "optimizer's state with the spec's SHA-256 (the module's save; read it back "
                   "with the module's load)")
    t.add_argument("--plot", metavar="FILE.png", help="plot the loss, the weights and the "
                   "gradient norms (needs matplotlib)")
    t.add_argument("--validation", metavar="FILE.npz", help="validation data (X and T, as "
                   "--data): the validation loss and accuracy after each epoch")
    t.add_argument("--validation-fraction", type=float, metavar="F", help="hold out this "
                   "fraction of --data (seeded by --seed) as the validation data")
    t.add_argument("--patience", type=int, metavar="N", help="with validation data: stop "
                   "after N epochs without a lower validation loss (the best epoch's "
                   "parameters are kept)")
    t.add_argument("--min-delta", type=float, default=0.0, metavar="D", help="with --patience:"
                   " an improvement must lower the validation loss by more than D (default 0)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("-o", "--out-dir", metavar="DIR", help="where the compiled module goes "
                   "(default: the cache directory)")


def _explain(args) -> int:
    from .explain import check_explainable, explain

    spec = load_spec(args.spec)
    check_explainable(spec)  # before compiling anything
    if not 1 <= args.digits <= 17:
        raise SymnetError(f"--digits: expected 1 to 17, got {args.digits}")
    result = explain(spec, args.input, args.target, out_dir=args.out_dir, lr=args.lr,
                     digits=args.digits)
    print(result.latex() if args.latex else result.text(), end="")
    return 0


def _validation_data(args, spec, X, T):
    """((X, T) to train on, (X_val, T_val)) from --validation or --validation-fraction, or
    None."""
    import numpy as np

    from .train import load_data

    if args.validation is not None and args.validation_fraction is not None:
        raise SymnetError("--validation-fraction: not with --validation (give one of them)")
    if args.validation is not None:
        if not Path(args.validation).is_file():
            raise SymnetError(f"--validation: expected an .npz file, got {args.validation}")
        return (X, T), load_data(args.validation, spec.network.inputs, spec.network.outputs)
    if args.validation_fraction is None:
        return None
    f = args.validation_fraction
    held = int(round(f * X.shape[0])) if np.isfinite(f) else 0
    if not 0 < f < 1 or held < 1 or held >= X.shape[0]:
        raise SymnetError(f"--validation-fraction: expected a fraction in (0, 1) that leaves "
                          f"samples on both sides, got {f} of {X.shape[0]} samples")
    order = np.random.default_rng(args.seed or 0).permutation(X.shape[0])
    train, val = order[held:], order[:held]
    return (X[train], T[train]), (X[val], T[val])


def _train(args) -> int:
    import numpy as np

    from .compiler import compile as compile_spec
    from .train import accuracy, load_data, plot_trace, require_matplotlib, save_trace, train

    spec = load_spec(args.spec)
    if spec.loss.kind == "residuals":
        raise SymnetError(f"{spec.source}: loss.kind: symnet train takes inputs and targets; a "
                          f"residual loss trains on its sets of points: call the compiled "
                          f"module's fit(params, points, epochs) (see examples/pinn.py)")
    X, T = load_data(args.data, spec.network.inputs, spec.network.outputs)
    if args.epochs < 1:
        raise SymnetError(f"--epochs: expected a positive integer, got {args.epochs}")
    if args.batch_size is not None and args.batch_size < 1:
        raise SymnetError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if args.lr is not None and not (np.isfinite(args.lr) and args.lr > 0):
        raise SymnetError(f"--lr: expected a positive number, got {args.lr}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise SymnetError(f"--seed: expected an integer in [0, 2**32), got {args.seed}")
    for flag, path in (("--trace-out", args.trace_out), ("--params-out", args.params_out),
                       ("--save", args.save), ("--plot", args.plot)):
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise SymnetError(f"{flag}: expected a file in an existing directory, got {path}")
    validation = _validation_data(args, spec, X, T)
    if validation is not None:
        X, T = validation[0]
        for flag, value in (("--trace-out", args.trace_out), ("--plot", args.plot)):
            if value is not None:
                raise SymnetError(f"{flag}: not with validation data (the trace is recorded "
                                  f"without it)")
    elif args.patience is not None:
        raise SymnetError("--patience: needs validation data (--validation or "
                          "--validation-fraction)")
    if args.patience is not None and args.patience < 1:
        raise SymnetError(f"--patience: expected a positive integer, got {args.patience}")
    if not (np.isfinite(args.min_delta) and args.min_delta >= 0):
        raise SymnetError(f"--min-delta: expected a non-negative number, got {args.min_delta}")
    if args.plot:
        require_matplotlib()
    module = compile_spec(spec, args.out_dir)
    params = module.init_params(spec.init.seed if args.seed is None else args.seed)
    state = module.init_state()
    if validation is not None:
        history = module.fit(params, X, T, args.epochs, lr=args.lr, batch_size=args.batch_size,
                             seed=args.seed or 0, state=state, validation=validation[1],
                             patience=args.patience, min_delta=args.min_delta)
        trace = {"loss": history["loss"]}
    else:
        trace = train(module, params, X, T, args.epochs, lr=args.lr,
                      batch_size=args.batch_size, seed=args.seed or 0, state=state, spec=spec,
                      progress=not args.no_progress)
    final = module.loss(params, X, T)
    epochs = len(trace["loss"])
    print(f"{spec.name}: {epochs} epochs on {X.shape[0]} samples; loss {trace['loss'][0]:.6g}"
          f" -> {final:.6g}")
    if validation is not None:
        best = history["best_epoch"]
        line = f"  validation: {validation[1][0].shape[0]} samples; best epoch {best}, loss " \
               f"{history['val_loss'][best]:.6g}"
        if "val_accuracy" in history:
            line += f", accuracy {history['val_accuracy'][best]:.2%}"
        if history["stopped_epoch"] is not None:
            line += f"; stopped early after epoch {history['stopped_epoch']}"
        print(line)
    acc = accuracy(module, params, X, T, spec.loss.kind)
    if acc is not None:
        print(f"  accuracy on the data {acc:.2%}")
    if args.trace_out:
        save_trace(trace, args.trace_out)
        print(f"  trace -> {args.trace_out}")
    if args.params_out:
        np.savez(args.params_out, **params)
        print(f"  parameters -> {args.params_out}")
    if args.save:
        module.save(args.save, params, state)
        print(f"  parameters and optimizer state -> {args.save}")
    if args.plot:
        plot_trace(trace, args.plot, title=f"{spec.name}: {args.epochs} epochs")
        print(f"  plot -> {args.plot}")
    return 0


_TEACHING_COMMANDS = {"explain": _explain, "train": _train}
