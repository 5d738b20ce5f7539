"""The templates' typed contexts (codegen/context.py and each form's subclass): frozen
dataclasses whose every field is a name some template reads, with a comment."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

import symnet.templates
from symnet.codegen import context
from symnet.codegen.cpu import context as cpu_context
from symnet.codegen.cpu import explain, kernels, scalar
from symnet.codegen.cuda import context as cuda_context

CONTEXTS = [context.ModuleContext, cpu_context.CpuModuleContext, scalar.CpuScalarContext,
            kernels.CpuLoopContext, kernels.KernelFileContext, cuda_context.CudaModuleContext,
            cuda_context.CudaScalarContext, cuda_context.CudaLoopContext,
            explain.ExplainContext]


def _template_names() -> set[str]:
    env = jinja2.Environment()
    root = Path(symnet.templates.__file__).parent
    names: set[str] = set()
    for path in root.rglob("*.jinja"):
        names |= jinja2.meta.find_undeclared_variables(env.parse(path.read_text("utf-8")))
    return names


def _names(cls) -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("spread"):
            out += [g.name for g in dataclasses.fields(context.OptimizerSettings)]
        else:
            out.append(f.name)
    return out


@pytest.mark.parametrize("cls", CONTEXTS, ids=lambda c: c.__name__)
def test_every_field_is_read_and_commented(cls):
    assert issubclass(cls, context.TemplateContext)
    assert cls.__dataclass_params__.frozen
    read = _template_names()
    assert [n for n in _names(cls) if n not in read] == []
    commented = set()
    for klass in cls.__mro__:
        if klass in (object, context.TemplateContext):
            continue
        for line in inspect.getsource(klass).splitlines():
            m = re.match(r"    (\w+): .*#", line)
            if m:
                commented.add(m.group(1))
    assert [f.name for f in dataclasses.fields(cls) if f.name not in commented] == []


def test_no_builder_is_called_context():
    for module in (context, cpu_context, scalar, kernels, explain, cuda_context):
        assert not hasattr(module, "context") or inspect.ismodule(module.context)
        assert not hasattr(module, "base_context")
