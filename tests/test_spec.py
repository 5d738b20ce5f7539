"""Stage 1, the loader: TOML spec -> validated, frozen `Spec`, and its refusals.

Expected values come from the spec files' text (examples/mazur.toml) and from the spec
format's rules, never from running the loader.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

import symnet
from symnet.spec import Activation, Layer

ROOT = Path(__file__).resolve().parent.parent
MAZUR = ROOT / "examples" / "mazur.toml"
BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"


def small(**overrides) -> dict:
    """A minimal 3-4-1 spec as a dict, every optional table left out."""
    data = {
        "name": "small",
        "network": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"},
                                            {"units": 1, "activation": "linear"}]},
        "loss": {"kind": "mse"},
    }
    data.update(overrides)
    return data


# ----------------------------------------------------------------------------------------
# the lecture's example, field by field against examples/mazur.toml


@pytest.fixture(scope="module")
def mazur():
    return symnet.load_spec(MAZUR)


def test_mazur_name_and_network(mazur):
    assert isinstance(mazur, symnet.Spec)
    assert mazur.name == "mazur"
    assert mazur.network.inputs == 2
    assert mazur.network.outputs == 2
    sigmoid = Activation("sigmoid")
    assert mazur.network.layers == (Layer(2, sigmoid, "shared"), Layer(2, sigmoid, "shared"))


def test_mazur_loss_training_codegen(mazur):
    assert (mazur.loss.kind, mazur.loss.reduction) == ("sse", "sum")
    assert mazur.training.optimizer == "sgd"
    assert mazur.training.learning_rate == 0.5
    assert mazur.training.update == ("weights",)
    assert (mazur.codegen.dtype, mazur.codegen.strategy) == ("float64", "store")


def test_mazur_initial_values(mazur):
    assert mazur.init.explicit == {
        "W1": ((0.15, 0.20), (0.25, 0.30)),
        "b1": 0.35,
        "W2": ((0.40, 0.45), (0.50, 0.55)),
        "b2": 0.60,
    }


def test_mazur_parameters(mazur):
    # shared biases are scalars: 4 + 1 + 4 + 1 = 10 numbers, in the order W1, b1, W2, b2
    shapes = mazur.param_shapes()
    assert list(shapes.items()) == [("W1", (2, 2)), ("b1", ()), ("W2", (2, 2)), ("b2", ())]
    assert mazur.n_params() == 10
    assert mazur.updated_params() == ("W1", "W2")  # update = ["weights"]


def test_mazur_source_and_hash(mazur):
    assert mazur.source == str(MAZUR)
    assert mazur.sha256 == hashlib.sha256(MAZUR.read_bytes()).hexdigest()


def test_spec_is_frozen_and_hashable(mazur):
    hash(mazur)  # a cache key: every field, init values included, must be hashable
    with pytest.raises(AttributeError):
        mazur.name = "other"


def test_spec_from_dict_matches_load_spec(mazur):
    from_dict = symnet.spec_from_dict(tomllib.loads(MAZUR.read_text(encoding="utf-8")))
    for field in ("name", "network", "loss", "training", "init", "codegen"):
        assert getattr(from_dict, field) == getattr(mazur, field), field
    assert from_dict.source == "<dict>"
    assert len(from_dict.sha256) == 64


def test_dict_hash_ignores_key_order():
    a = symnet.spec_from_dict(small())
    b = symnet.spec_from_dict(dict(reversed(list(small().items()))))
    c = symnet.spec_from_dict(small(training={"learning_rate": 0.2}))
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256


# ----------------------------------------------------------------------------------------
# defaults and shapes


def test_defaults():
    spec = symnet.spec_from_dict(small())
    assert spec.loss.reduction == "mean"
    assert spec.training.optimizer == "sgd"
    assert set(spec.training.update) == {"weights", "biases"}
    assert spec.codegen.dtype == "float64"
    assert spec.codegen.strategy == "store"
    assert spec.init.explicit == {}
    assert [layer.bias for layer in spec.network.layers] == ["per_unit", "per_unit"]
    assert spec.updated_params() == ("W1", "b1", "W2", "b2")


def test_per_unit_shapes():
    spec = symnet.spec_from_dict(small())
    # W<l> is (units_out, units_in); a per-unit bias has one entry per unit
    assert list(spec.param_shapes().items()) == [
        ("W1", (4, 3)), ("b1", (4,)), ("W2", (1, 4)), ("b2", (1,))]
    assert spec.n_params() == 12 + 4 + 4 + 1


def test_bias_none_leaves_the_bias_out():
    data = small()
    data["network"]["layers"][0]["bias"] = "none"
    data["network"]["layers"][1]["bias"] = "shared"
    spec = symnet.spec_from_dict(data)
    assert list(spec.param_shapes().items()) == [("W1", (4, 3)), ("W2", (1, 4)), ("b2", ())]
    assert spec.n_params() == 12 + 4 + 1


def test_no_biases_at_all():
    data = small()
    for layer in data["network"]["layers"]:
        layer["bias"] = "none"
    spec = symnet.spec_from_dict(data)
    assert list(spec.param_shapes()) == ["W1", "W2"]
    assert spec.updated_params() == ("W1", "W2")


def test_update_biases_only():
    spec = symnet.spec_from_dict(small(training={"update": ["biases"]}))
    assert spec.updated_params() == ("b1", "b2")


@pytest.mark.parametrize("activation, expected", [
    ("leaky_relu", {"alpha": 0.01}),  # the documented default
    ({"name": "leaky_relu"}, {"alpha": 0.01}),
    ({"name": "leaky_relu", "alpha": 0.2}, {"alpha": 0.2}),
    ({"name": "leaky_relu", "alpha": 1}, {"alpha": 1.0}),  # an integer is a number
    ("tanh", {}),
    ({"name": "tanh"}, {}),
])
def test_activation_parameters(activation, expected):
    data = small()
    data["network"]["layers"][0]["activation"] = activation
    act = symnet.spec_from_dict(data).network.layers[0].activation
    name = activation if isinstance(activation, str) else activation["name"]
    assert act.name == name
    assert act.kwargs == expected
    assert all(isinstance(v, float) for v in act.kwargs.values())


def test_explicit_init_values_are_kept_as_floats():
    data = small(init={"seed": 7, "scheme": "normal_0.01",
                       "b1": [1, 2, 3, 4], "W2": [[0.5, -1, 2, 0]]})
    spec = symnet.spec_from_dict(data)
    assert spec.init.seed == 7
    assert spec.init.scheme == "normal_0.01"
    assert spec.init.explicit == {"b1": (1.0, 2.0, 3.0, 4.0), "W2": ((0.5, -1.0, 2.0, 0.0),)}
    assert all(type(x) is float for x in spec.init.explicit["b1"])


def test_codegen_override():
    spec = symnet.spec_from_dict(small())
    changed = spec.replace_codegen(strategy="recompute", dtype="float32")
    assert (changed.codegen.strategy, changed.codegen.dtype) == ("recompute", "float32")
    assert spec.codegen.strategy == "store"  # the original is untouched
    with pytest.raises(symnet.SpecError, match="codegen.strategy"):
        spec.replace_codegen(strategy="bogus")


# ----------------------------------------------------------------------------------------
# refusals


def test_corpus_is_well_formed():
    files = sorted(BAD_SPECS.glob("*.toml"))
    assert len(files) >= 25
    for path in files:
        first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
        assert first.startswith("# error: ") and first[len("# error: "):].strip(), path.name


def test_bad_spec_is_refused(bad_spec):
    if bad_spec.stage == "build":
        spec = symnet.load_spec(bad_spec.path)  # the loader accepts it
        with pytest.raises(symnet.SpecError) as info:
            symnet.build(spec)
    else:
        with pytest.raises(symnet.SpecError) as info:
            symnet.load_spec(bad_spec.path)
    message = str(info.value)
    assert message.splitlines() == [message], "the error must be one line"
    assert message.isprintable()
    assert str(bad_spec.path) in message, "the error must name the file"
    for text in bad_spec.expected:
        assert text in message
    assert isinstance(info.value, symnet.SymnetError)


def test_bad_dict_names_the_source_and_key():
    data = small()
    data["network"]["layers"][1]["units"] = "1"
    with pytest.raises(symnet.SpecError) as info:
        symnet.spec_from_dict(data, source="from_test")
    assert info.value.file == "from_test"
    assert info.value.key == "network.layers[1].units"
    assert str(info.value).startswith("from_test: network.layers[1].units: expected an integer")


@pytest.mark.parametrize("data, key", [
    ([1, 2], "<top level>"),
    (small(network=None), "network"),
    (small(loss={"kind": "sse", "reduction": None}), "loss.reduction"),
    (small(name=None), "name"),
])
def test_non_toml_values_from_a_dict(data, key):
    with pytest.raises(symnet.SpecError) as info:
        symnet.spec_from_dict(data)
    assert info.value.key == key


@pytest.mark.parametrize("key", ["a\nb", "x\r\n[evil]", "tab\there", "\x1b[31mred", "\u2028"])
def test_control_characters_in_keys_stay_on_one_line(key):
    data = small()
    data[key] = 1
    with pytest.raises(symnet.SpecError) as info:
        symnet.spec_from_dict(data)
    message = str(info.value)
    assert message.isprintable() and len(message.splitlines()) == 1


def test_a_long_unknown_key_is_shortened():
    data = small()
    data["k" * 10_000] = 1
    with pytest.raises(symnet.SpecError) as info:
        symnet.spec_from_dict(data)
    assert len(str(info.value)) < 500


def test_huge_integer_from_a_dict():
    data = small(training={"learning_rate": 10**5000})  # too long even to print
    with pytest.raises(symnet.SpecError) as info:
        symnet.spec_from_dict(data)
    assert info.value.key == "training.learning_rate"
    assert len(str(info.value)) < 500


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(symnet.SpecError) as info:
        symnet.load_spec(path)
    assert str(path) in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(symnet.SpecError) as info:
        symnet.load_spec(tmp_path)
    assert str(tmp_path) in str(info.value)
