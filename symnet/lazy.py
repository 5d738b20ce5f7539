"""sympy, imported on its first use.

Loading a spec and rendering a module from tables (a cached module, or a network whose kinds
of layers have a kernel file already) needs no sympy, and importing it takes about 0.4 s. The
modules of the spec stage refer to sympy through `sp`, this stand-in, which imports it when an
attribute is first read.
"""

from __future__ import annotations


class _Sympy:
    def __getattr__(self, name):
        import sympy

        self.__dict__.update(vars(sympy))  # later reads find the attribute directly
        return getattr(sympy, name)


sp = _Sympy()
