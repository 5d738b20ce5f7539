"""symnet.torch: forward, loss and gradients of the generated module against PyTorch autograd,
the to_torch / from_torch round trip, every bias kind, and the refusals."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
from _reference import kinds_covered, random_data, random_params, random_spec

import symnet
from symnet import functions

pytestmark = pytest.mark.extra  # needs torch: CI's extras step runs it (.ci/run)

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; symnet.torch is optional (pip install torch)")

from symnet.torch import (  # noqa: E402  (after the importorskip)
    TorchInteropError,
    from_torch,
    to_torch,
    torch_loss,
)

RTOL, ATOL = 1e-10, 1e-12
ROOT = Path(__file__).resolve().parent.parent

# random_spec(rng, i) for i in 0..5 covers every activation of its list (sigmoid, tanh, relu,
# leaky_relu, linear), every loss (sse, mse, bce), bias kind, reduction and depth 1..3.
RANDOM_INDICES = range(6)
WEIGHT_DECAY_INDICES = (2, 4)  # reduction mean and sum
BASE_ACTIVATIONS = {"sigmoid", "tanh", "relu", "leaky_relu", "linear"}
BASE_LOSSES = {"sse", "mse", "bce"}


def torch_grads(model) -> dict[str, np.ndarray]:
    """The .grad of each parameter of a to_torch model, keyed like symnet's params."""
    shared_bias = symnet.torch.SharedBias
    grads, ln = {}, 0
    for m in model:
        if isinstance(m, torch.nn.Linear):
            ln += 1
            grads[f"W{ln}"] = m.weight.grad.numpy()
            if m.bias is not None:
                grads[f"b{ln}"] = m.bias.grad.numpy()
        elif isinstance(m, shared_bias):
            grads[f"b{ln}"] = m.bias.grad.numpy()
    return grads


def check_against_autograd(net, spec, params, X, T):
    """forward, loss and grad of the generated module `net` equal PyTorch's."""
    model = to_torch(spec, params)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    Y = model(Xt)
    np.testing.assert_allclose(Y.detach().numpy(), net.forward(params, X), rtol=RTOL, atol=ATOL)

    E, grads = net.grad(params, X, T)
    loss = torch_loss(spec)(Y, Tt, model)
    loss.backward()
    assert loss.dtype == torch.float64
    np.testing.assert_allclose(loss.item(), E, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(loss.item(), net.loss(params, X, T), rtol=RTOL, atol=ATOL)
    tg = torch_grads(model)
    assert tg.keys() == grads.keys() == net.PARAM_SHAPES.keys()
    for name in grads:
        assert tg[name].shape == grads[name].shape
        np.testing.assert_allclose(tg[name], grads[name], rtol=RTOL, atol=ATOL, err_msg=name)

    # the same from the output layer's pre-activation (model[:-1]): the stable forms
    model.zero_grad()
    loss2 = torch_loss(spec, from_logits=True)(model[:-1](Xt), Tt, model)
    loss2.backward()
    np.testing.assert_allclose(loss2.item(), E, rtol=RTOL, atol=ATOL)
    tg = torch_grads(model)
    for name in grads:
        np.testing.assert_allclose(tg[name], grads[name], rtol=RTOL, atol=ATOL, err_msg=name)
    return model


@pytest.fixture(scope="module")
def random_nets(tmp_path_factory):
    """The random specs of RANDOM_INDICES, each compiled once for the whole file."""
    out = {}
    for index in RANDOM_INDICES:
        rng = np.random.default_rng(4000 + index)
        spec = random_spec(rng, index)
        spec["name"] = f"torch_rand{index}"
        if index in WEIGHT_DECAY_INDICES:
            spec["loss"]["weight_decay"] = 0.05
        net = symnet.compile(spec, tmp_path_factory.mktemp(f"rand{index}"))
        out[index] = (spec, net, rng)
    return out


def test_random_indices_cover_every_kind(random_nets):
    seen = kinds_covered(spec for spec, _, _ in random_nets.values())
    assert seen["act"] >= BASE_ACTIVATIONS
    assert seen["loss"] >= BASE_LOSSES
    assert seen["bias"] == {"per_unit", "shared", "none"}
    assert seen["red"] == {"mean", "sum"}


@pytest.mark.parametrize("index", RANDOM_INDICES)
def test_random_spec_matches_autograd(index, random_nets):
    spec, net, rng = random_nets[index]
    params = random_params(rng, net.PARAM_SHAPES)
    X, T = random_data(rng, spec, batch=5)
    check_against_autograd(net, spec, params, X, T)


@pytest.mark.parametrize("index", RANDOM_INDICES)
def test_round_trip(index, random_nets):
    spec, net, rng = random_nets[index]
    params = random_params(rng, net.PARAM_SHAPES)
    model = to_torch(spec, params)
    for source in (spec, symnet.spec_from_dict(spec), net):  # dict, Spec, generated module
        back = from_torch(model, source)
        assert list(back) == list(net.PARAM_SHAPES)
        for name, value in back.items():
            assert value.dtype == np.float64 and value.flags.c_contiguous and value.flags.writeable
            np.testing.assert_array_equal(value, params[name])
    # copies both ways: neither the model nor the returned arrays alias anything
    before = {k: v.copy() for k, v in params.items()}
    for value in params.values():
        value[...] = 123.0
    back = from_torch(model, spec)
    for name in before:
        np.testing.assert_array_equal(back[name], before[name])
        back[name][...] = -7.0
    for name, value in from_torch(model, net).items():
        np.testing.assert_array_equal(value, before[name])
    # the round trip feeds the generated module directly
    X, T = random_data(rng, spec, batch=3)
    np.testing.assert_allclose(net.forward(from_torch(model, net), X),
                               model(torch.from_numpy(X)).detach().numpy(), rtol=RTOL, atol=ATOL)


MIXED = {
    "name": "torch_mixed",
    "network": {"inputs": 3, "layers": [
        {"units": 4, "activation": {"name": "leaky_relu", "alpha": 0.2}, "bias": "shared"},
        {"units": 3, "activation": "tanh", "bias": "none"},
        {"units": 2, "activation": "linear", "bias": "per_unit"},
    ]},
    "loss": {"kind": "mse", "reduction": "sum"},
}


def test_bias_kinds_layout():
    params = random_params(np.random.default_rng(1), symnet.spec_from_dict(MIXED).param_shapes())
    model = to_torch(MIXED, params)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "SharedBias", "LeakyReLU", "Linear", "Tanh", "Linear", "Identity"]
    assert model[0].bias is None and model[3].bias is None and model[5].bias is not None
    assert model[1].bias.shape == () and model[1].bias.item() == params["b1"]
    assert model[2].negative_slope == 0.2
    assert set(model.state_dict()) == {"0.weight", "1.bias", "3.weight", "5.weight", "5.bias"}
    assert sum(p.numel() for p in model.parameters()) == 12 + 1 + 12 + 6 + 2
    # every parameter trains, the shared bias included
    model(torch.ones(2, 3, dtype=torch.float64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # picklable (SharedBias is importable as symnet.torch.SharedBias)
    clone = pickle.loads(pickle.dumps(model))
    x = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(clone(x), model(x))
    # a Python float for a shared bias, lists for the rest
    as_lists = {k: v.tolist() for k, v in params.items()}
    as_lists["b1"] = float(params["b1"])
    assert torch.equal(to_torch(MIXED, as_lists)(x), model(x))


def test_float32(tmp_path):
    spec = dict(MIXED, name="torch_f32", codegen={"dtype": "float32"})
    net = symnet.compile(spec, tmp_path)
    params = net.init_params(seed=3)
    params["b1"] = np.asarray(0.3, dtype=np.float32)
    model = to_torch(spec, params)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(model(torch.from_numpy(X)).detach().numpy(),
                               net.forward(params, X), rtol=1e-5, atol=1e-6)
    back = from_torch(model, net)
    assert all(v.dtype == np.float32 for v in back.values())
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])
    # float64 parameters give a float64 model; from_torch still follows the spec's dtype
    wide = to_torch(spec, {k: v.astype(np.float64) for k, v in params.items()})
    assert all(p.dtype == torch.float64 for p in wide.parameters())
    assert all(v.dtype == np.float32 for v in from_torch(wide, spec).values())


# ----------------------------------------------------------------------------------------
# activations and losses beyond the random specs' lists, as the registry grows


# Registry activations with an exact torch module, and those that have none (when present).
EXPECTED_MAPPED = {"elu", "selu", "softplus", "silu", "swish", "gelu", "gelu_tanh", "softsign",
                   "softmax"}
EXPECTED_REFUSED = {"step", "sign", "hard_sigmoid"}  # hard_sigmoid: clip(x + 1/2), not x/6


def _probe(name: str) -> str | None:
    """None when to_torch converts a one-layer network of `name`, else its refusal."""
    spec = symnet.spec_from_dict({"name": "probe", "network": {"inputs": 2, "layers": [
        {"units": 3, "activation": name}]}, "loss": {"kind": "sse"}})
    try:
        to_torch(spec, random_params(np.random.default_rng(0), spec.param_shapes()))
    except TorchInteropError as exc:
        return str(exc)
    return None


def test_every_registry_activation_is_mapped_or_refused_clearly():
    assert BASE_ACTIVATIONS <= set(functions.ACTIVATIONS)
    for name in functions.ACTIVATIONS:
        refusal = _probe(name)
        if name in BASE_ACTIVATIONS | EXPECTED_MAPPED:
            assert refusal is None, refusal
        elif name in EXPECTED_REFUSED:
            assert refusal is not None and repr(name) in refusal, refusal
        else:  # new in the registry: either is fine, but a refusal names the activation
            assert refusal is None or repr(name) in refusal or f"'{name}(" in refusal, refusal


def _extra_specs() -> list[dict]:
    """A few specs that together use every registry activation beyond BASE_ACTIVATIONS that
    to_torch maps, and every loss beyond BASE_LOSSES, each loss after the output activation it
    requires or fuses with."""
    acts = [n for n, entry in functions.ACTIVATIONS.items()
            if n not in BASE_ACTIVATIONS and not getattr(entry, "layer_wide", False)
            and _probe(n) is None]
    chunks = [acts[i:i + 3] for i in range(0, len(acts), 3)]
    losses = [k for k in functions.LOSSES if k not in BASE_LOSSES]
    specs = []
    for j in range(max(len(chunks), len(losses))):
        names = chunks[j] if j < len(chunks) else ["tanh"]
        kind = losses[j] if j < len(losses) else "sse"
        entry = functions.LOSSES[kind]
        out = entry.requires_output or (getattr(entry, "fuses", ()) or (None,))[0]
        layers = [{"units": 3, "activation": n, "bias": ("per_unit", "shared", "none")[i % 3]}
                  for i, n in enumerate(names)]
        if out is not None:
            layers.append({"units": 3, "activation": out})
        specs.append({"name": f"torch_extra{j}", "network": {"inputs": 3, "layers": layers},
                      "loss": {"kind": kind, "reduction": ("mean", "sum")[j % 2]}})
    return specs


EXTRA_SPECS = _extra_specs()


def _spec_id(spec: dict) -> str:
    acts = [la["activation"] for la in spec["network"]["layers"]]
    return "-".join(acts + [spec["loss"]["kind"]])


@pytest.mark.parametrize("spec", EXTRA_SPECS or [None],
                         ids=[_spec_id(s) for s in EXTRA_SPECS] or ["none"])
def test_extra_activations_and_losses_match_autograd(spec, tmp_path):
    if spec is None:
        pytest.skip("the registry has no activation or loss beyond the random specs' lists")
    rng = np.random.default_rng(8)
    net = symnet.compile(spec, tmp_path)
    params = random_params(rng, net.PARAM_SHAPES)
    X = rng.normal(0.0, 1.0, (5, 3))
    T = rng.dirichlet(np.ones(3), 5)  # rows of probabilities: fit for every loss
    check_against_autograd(net, spec, params, X, T)


def test_extra_specs_cover_the_registry():
    used_acts = {la["activation"] for s in EXTRA_SPECS for la in s["network"]["layers"]}
    used_losses = {s["loss"]["kind"] for s in EXTRA_SPECS}
    for name in functions.ACTIVATIONS:
        if _probe(name) is None:
            assert name in used_acts | BASE_ACTIVATIONS, name
    assert set(functions.LOSSES) <= used_losses | BASE_LOSSES


# ----------------------------------------------------------------------------------------
# the numeric check behind the mapping


def test_activation_differing_from_torch_is_refused(monkeypatch):
    """hard_sigmoid as Keras defines it (x/5 + 1/2) is not torch's Hardsigmoid (x/6 + 1/2)."""
    import sympy as sp

    def keras(v):
        return sp.Piecewise((0, v <= -2.5), (1, v >= 2.5), (v / 5 + sp.Rational(1, 2), True))

    def torchs(v):
        return sp.Piecewise((0, v <= -3), (1, v >= 3), (v / 6 + sp.Rational(1, 2), True))

    spec = {"name": "hs", "network": {"inputs": 2, "layers": [
        {"units": 2, "activation": "hard_sigmoid"}]}, "loss": {"kind": "sse"}}
    params = {"W1": np.eye(2), "b1": np.zeros(2)}
    # the entry's `torch` names nn.Hardsigmoid; only its expression changes
    entry = functions.ACTIVATIONS["hard_sigmoid"]
    monkeypatch.setitem(functions.ACTIVATIONS, "hard_sigmoid",
                        dataclasses.replace(entry, build=keras))
    with pytest.raises(TorchInteropError, match="not the same function as nn.Hardsigmoid"):
        to_torch(spec, params)
    monkeypatch.setitem(functions.ACTIVATIONS, "hard_sigmoid",
                        dataclasses.replace(entry, build=torchs))
    assert isinstance(to_torch(spec, params)[-1], torch.nn.Hardsigmoid)

    monkeypatch.setitem(functions.ACTIVATIONS, "cube",
                        functions.ActivationDef("cube", lambda v: v**3))
    spec["network"]["layers"][0]["activation"] = "cube"
    with pytest.raises(TorchInteropError, match="'cube' has no PyTorch counterpart"):
        to_torch(spec, params)


def test_loss_differing_from_torch_is_refused(monkeypatch):
    import sympy as sp

    monkeypatch.setitem(functions.LOSSES, "mse",
                        functions.LossDef("mse", lambda o, g, k: (g - o) ** 2 / (2 * k)))
    with pytest.raises(TorchInteropError, match="loss 'mse': symnet's definition is not"):
        torch_loss(MIXED)
    monkeypatch.setitem(functions.LOSSES, "mae",
                        functions.LossDef("mae", lambda o, g, k: sp.Abs(g - o) / k))
    spec = dict(MIXED, loss={"kind": "mae", "reduction": "mean"})
    y = torch.tensor([[0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    assert torch_loss(spec)(y, np.zeros((2, 2))).item() == pytest.approx((2 / 2 + 2 / 2) / 2)


# ----------------------------------------------------------------------------------------
# refusals


def test_to_torch_refusals(random_nets):
    spec, net, _ = random_nets[1]
    params = net.init_params()
    with pytest.raises(TorchInteropError, match="needs the network's Spec"):
        to_torch(net, params)
    with pytest.raises(TorchInteropError, match="missing 'W1'"):
        to_torch(spec, {})
    bad = dict(params, W1=np.zeros((9, 9)))
    with pytest.raises(TorchInteropError, match=r"params\['W1'\]: expected shape"):
        to_torch(spec, bad)
    with pytest.raises(TorchInteropError, match="expected a dict"):
        to_torch(spec, [1, 2])
    with pytest.raises(TorchInteropError, match="expected a symnet.Spec"):
        to_torch(42, params)


def test_from_torch_refusals():
    params = random_params(np.random.default_rng(2), symnet.spec_from_dict(MIXED).param_shapes())
    model = to_torch(MIXED, params)
    with pytest.raises(TorchInteropError, match="expected a torch.nn.Sequential"):
        from_torch(model[0], MIXED)
    with pytest.raises(TorchInteropError, match="expected 3 nn.Linear layers, found 2"):
        from_torch(model[:5], MIXED)
    swapped = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=True), *model[2:])
    with pytest.raises(TorchInteropError, match="the bias is 'per_unit' in the model but 'shared'"):
        from_torch(swapped, MIXED)
    wrong = torch.nn.Sequential(torch.nn.Linear(3, 5, bias=False), *model[1:])
    with pytest.raises(TorchInteropError, match=r"weight has shape \(5, 3\), expected \(4, 3\)"):
        from_torch(wrong, MIXED)
    extra = torch.nn.Sequential(*model[:3], torch.nn.BatchNorm1d(4), *model[3:])
    with pytest.raises(TorchInteropError, match="BatchNorm1d has parameters"):
        from_torch(extra, MIXED)
    orphan = torch.nn.Sequential(model[1], *model)
    with pytest.raises(TorchInteropError, match="SharedBias must directly follow"):
        from_torch(orphan, MIXED)
    # nested Sequentials are flattened
    nested = torch.nn.Sequential(model[:3], torch.nn.Sequential(*model[3:]))
    for name, value in from_torch(nested, MIXED).items():
        np.testing.assert_array_equal(value, params[name])


def test_custom_and_unmatched_activations_and_losses_refused():
    def spec_with(activation, loss=None):
        return {"name": "refused", "network": {"inputs": 2, "layers": [
            {"units": 2, "activation": activation}]}, "loss": loss or {"kind": "sse"}}

    params = {"W1": np.eye(2), "b1": np.zeros(2)}
    with pytest.raises(TorchInteropError, match=r"layer 1: a custom activation \(x\*\*3\)"):
        to_torch(spec_with({"expr": "x**3"}), params)
    with pytest.raises(TorchInteropError, match="'step' has no PyTorch counterpart"):
        to_torch(spec_with("step"), params)
    with pytest.raises(TorchInteropError, match="'hard_sigmoid': symnet's definition is not"):
        to_torch(spec_with("hard_sigmoid"), params)
    with pytest.raises(TorchInteropError, match="a custom loss"):
        torch_loss(spec_with("tanh", {"kind": "custom", "expr": "(y - t)**4"}))


def test_weight_decay_needs_the_model():
    spec = dict(MIXED, loss={"kind": "sse", "weight_decay": 0.5})
    params = random_params(np.random.default_rng(3), symnet.spec_from_dict(spec).param_shapes())
    model = to_torch(spec, params)
    y = model(torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(TorchInteropError, match="pass the model"):
        torch_loss(spec)(y, y.detach())
    decay = 0.5 * sum(np.sum(v ** 2) for k, v in params.items() if k.startswith("W"))
    assert torch_loss(spec)(y, y.detach(), model).item() == pytest.approx(decay, rel=1e-14)


def test_torch_loss_shapes():
    loss = torch_loss(MIXED)
    y = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(TorchInteropError, match=r"y: expected shape \(batch, 2\)"):
        loss(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(TorchInteropError, match=r"t: expected shape \(4, 2\) to match y"):
        loss(y, torch.zeros(4, 1))
    # sum over the batch, mean over the outputs; t may be an array
    assert loss(y, np.ones((4, 2))).item() == pytest.approx(4.0)
    assert loss.__name__ == "mse_sum"


def test_spec_object_and_path_accepted(tmp_path):
    params = {"W1": [[0.15, 0.20], [0.25, 0.30]], "b1": 0.35,
              "W2": [[0.40, 0.45], [0.50, 0.55]], "b2": 0.60}
    path = ROOT / "examples" / "mazur.toml"
    model = to_torch(path, params)
    y = model(torch.tensor([[0.05, 0.10]], dtype=torch.float64))
    np.testing.assert_allclose(y.detach().numpy(), [[0.75136507, 0.77292847]], rtol=1e-8)
    spec = symnet.load_spec(path)
    E = torch_loss(spec)(y, [[0.01, 0.99]])
    assert E.item() == pytest.approx(0.2983711088, rel=1e-9)
    assert dataclasses.is_dataclass(spec)


@pytest.mark.parametrize("mode", ["scalar", "loop"])
def test_input_derivatives_and_hvp_match_torch_func(mode, tmp_path):
    """jacobian against vmap(jacrev), input_grad against autograd, hvp against jvp of grad."""
    from torch.func import functional_call, grad, jacrev, jvp, vmap

    spec = {"name": f"tf_{mode}", "network": {"inputs": 3, "layers": [
        {"units": 4, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]},
        "loss": {"kind": "cross_entropy"}, "codegen": {"mode": mode, "derivatives": True}}
    net = symnet.compile(spec, tmp_path)
    rng = np.random.default_rng(3)
    params = {k: v + 0.2 * rng.normal(size=v.shape) for k, v in net.init_params().items()}
    X = rng.normal(size=(5, 3))
    T = rng.dirichlet(np.ones(3), size=5)
    model, lossf = to_torch(spec, params), torch_loss(spec)
    Xt, Tt = torch.tensor(X), torch.tensor(T)

    J = vmap(jacrev(lambda x: model(x[None])[0]))(Xt).detach().numpy()
    np.testing.assert_allclose(net.jacobian(params, X), J, rtol=1e-10, atol=1e-12)
    Xg = Xt.clone().requires_grad_(True)
    (G,) = torch.autograd.grad(lossf(model(Xg), Tt), Xg)
    np.testing.assert_allclose(net.input_grad(params, X, T)[1], G.numpy(), rtol=1e-10,
                               atol=1e-12)
    V = {k: rng.normal(size=v.shape) for k, v in params.items()}
    names = [n for n, _ in model.named_parameters()]
    theta = dict(zip(names, (p.detach() for p in model.parameters())))
    direction = dict(zip(names, (p.detach() for p in to_torch(spec, V).parameters())))

    def batch_loss(th):
        return lossf(functional_call(model, th, (Xt,)), Tt)

    _, Hv = jvp(grad(batch_loss), (theta,), (direction,))
    H = from_torch_like(Hv, names, spec)
    E, ours = net.hvp(params, X, T, V)
    for k in ours:
        np.testing.assert_allclose(ours[k], H[k], rtol=1e-9, atol=1e-12)


def from_torch_like(tensors, names, spec):
    """A dict of tensors keyed like model.named_parameters(), as symnet's params (from_torch)."""
    model = to_torch(spec, {k: np.zeros(s) for k, s in
                            symnet.spec.spec_from_dict(spec).param_shapes().items()})
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(tensors[n])
    return from_torch(model, spec)


def test_a_residual_loss_and_its_gradient_match_torch_func(tmp_path):
    """A physics-informed loss (a Laplacian, carried as one channel, and a first derivative on
    600 interior points; the values on the boundary) against torch.func: vmap(hessian) per
    point for u_xx + u_yy, vmap(jacrev) for u_y, autograd for the parameter gradient. 640
    points: the module shares each step's points out over its threads."""
    from torch.func import functional_call, hessian, jacrev, vmap

    spec = {"name": "tf_residuals", "network": {"inputs": 2, "layers": [
        {"units": 16, "activation": "tanh"}, {"units": 16, "activation": "tanh"},
        {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "residuals", "terms": [
            {"name": "pde", "points": "interior", "residual": "u_xx + u_yy - sin(x) * u_y"},
            {"name": "edge", "points": "boundary", "residual": "u - x * y", "weight": 2.0}]}}
    m = symnet.compile(spec, tmp_path)
    assert m._CHANNELS["interior"] == ("v", "d0", "d1", "dd")
    rng = np.random.default_rng(5)
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in m.init_params().items()}
    points = {"interior": rng.uniform(0, 1, (600, 2)), "boundary": rng.uniform(0, 1, (40, 2))}
    m.THREADS = 2  # whatever this machine has: the threads' path
    assert m._threads(m._points(points)) == 2

    layers = [torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
              torch.nn.Linear(16, 1)]
    model = torch.nn.Sequential(*layers).double()
    theta = {}
    for i, k in enumerate((0, 2, 4), start=1):
        theta[f"{k}.weight"] = torch.tensor(params[f"W{i}"], requires_grad=True)
        theta[f"{k}.bias"] = torch.tensor(params[f"b{i}"], requires_grad=True)

    def u(x):  # one point (2,) -> scalar
        return functional_call(model, theta, (x[None],))[0, 0]

    X, B = (torch.tensor(points[k]) for k in ("interior", "boundary"))
    lap = vmap(lambda x: torch.trace(hessian(u)(x)))(X)
    u_y = vmap(jacrev(u))(X)[:, 1]
    r = lap - torch.sin(X[:, 0]) * u_y
    edge = vmap(u)(B) - B[:, 0] * B[:, 1]
    E = (r ** 2).mean() + 2.0 * (edge ** 2).mean()
    E.backward()

    ours, g = m.grad(params, points)
    assert ours == pytest.approx(E.item(), rel=1e-11)
    for i, k in enumerate((0, 2, 4), start=1):
        np.testing.assert_allclose(g[f"W{i}"], theta[f"{k}.weight"].grad.numpy(), rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(g[f"b{i}"], theta[f"{k}.bias"].grad.numpy(), rtol=1e-9,
                                   atol=1e-12)
