"""Flattening of a generated module's entry points: the calls they make to the module's
own functions are replaced by the callees' bodies, in the source.

numba compiles every jitted callee on its own and then again inside each caller that
links it, so a chain of calls (``rhs_guarded`` → ``rhs`` → ``flow_matrices`` →
``coefficients``) is typed, optimised and turned into machine code once per level.  An
entry point whose callees are inlined as source is compiled once.  Measured on a fresh
process (erf, 2 cores): the chain took 7.3 s after numba's start-up, the flat
``rhs_guarded`` 4.2 s (benchmarks/bench_engine.py has the cold starts).  numba's own
``inline='always'`` took 8.9 s: it inlines typed IR, at a higher cost than the source.

The callees stay in the module for the other callers and for reading; only the named
entry points are rewritten.  A callee's local names are kept unless its caller uses
them too (then they get the callee's name as a prefix).

>>> source = '''
... def add_into(a, b, out):
...     k = a + b
...     out[0] = k
...
... def entry(x, out):
...     add_into(x, 1.0, out)
... '''
>>> print(flatten(source, ["entry"]).strip())
def add_into(a, b, out):
    k = a + b
    out[0] = k
<BLANKLINE>
def entry(x, out):
    a = x
    b = 1.0
    k = a + b
    out[0] = k
"""
from __future__ import annotations

import ast
import copy
from collections.abc import Sequence

__all__ = ["flatten"]


def flatten(source: str, entries: Sequence[str]) -> str:
    """``source`` with the bodies of the functions ``entries`` rewritten so that every
    statement calling another function of the module (``f(...)`` or ``return f(...)``) is
    replaced by f's body, recursively.

    A callee's parameters become assignments from the arguments (none where the argument
    is the parameter's own name and the callee never assigns to it).  A name of the
    callee that its caller also uses gets the callee's name as a prefix, so nothing of
    the caller is overwritten; the others keep their names, for reading.  Comments inside
    the rewritten functions are lost (``ast``); the rest of the text is kept.

    Raises
    ------
    ValueError
        If an entry is missing, or a callee has keyword arguments, a wrong number of
        arguments, a ``return`` before its last statement or calls itself (faults of a
        template, not of a user's input).
    """
    tree = ast.parse(source)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    lines = source.splitlines(keepends=True)
    edits = []
    for name in entries:
        if name not in functions:
            raise ValueError(f"no function {name!r} to flatten")
        original = functions[name]
        node = copy.deepcopy(original)
        node.decorator_list = []
        docstring = node.body[:1] if _is_docstring(node.body[0]) else []
        node.body = docstring + _expand(node.body[len(docstring):], functions, (name,),
                                        _names(node))
        start = min([original.lineno, *(d.lineno for d in original.decorator_list)])
        decorators = "".join(lines[start - 1:original.lineno - 1])
        edits.append((start, original.end_lineno, decorators + ast.unparse(node) + "\n"))
    for start, end, text in sorted(edits, reverse=True):
        lines[start - 1:end] = [text]
    return "".join(lines)


def _names(node) -> set:
    """Every name a function (or list of statements) uses, its parameters included."""
    nodes = node if isinstance(node, list) else [node]
    return {n.id if isinstance(n, ast.Name) else n.arg for x in nodes for n in ast.walk(x)
            if isinstance(n, (ast.Name, ast.arg))}


def _is_docstring(statement) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def _call_of(statement, functions):
    """The module-function call a statement consists of (``f(...)`` or ``return f(...)``)."""
    value = statement.value if isinstance(statement, (ast.Expr, ast.Return)) else None
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id in functions):
        return value
    return None


def _expand(statements, functions, stack, taken):
    """``statements`` with their calls inlined; ``taken``: the names of the function
    they belong to (grown by the names each inlined body brings)."""
    out = []
    for statement in statements:
        call = _call_of(statement, functions)
        if call is None:
            for field in ("body", "orelse"):
                if isinstance(getattr(statement, field, None), list):
                    setattr(statement, field,
                            _expand(getattr(statement, field), functions, stack, taken))
            out.append(statement)
        else:
            body = _inlined(functions[call.func.id], call, isinstance(statement, ast.Return),
                            functions, stack, taken)
            taken |= _names(body)
            out += body
    return out


def _inlined(callee, call, returns, functions, stack, taken):
    """The statements replacing ``call`` (its value returned by the caller if ``returns``)
    in a function that uses the names ``taken``."""
    name = callee.name
    if name in stack:
        raise ValueError(f"recursive call of {name!r} cannot be inlined")
    params = [a.arg for a in callee.args.args]
    if call.keywords or len(call.args) != len(params):
        raise ValueError(f"call of {name!r} needs its {len(params)} arguments by position")
    body = copy.deepcopy(callee.body[1:] if _is_docstring(callee.body[0]) else callee.body)
    body = _expand(body, functions, stack + (name,), _names(callee))
    for i, statement in enumerate(body):
        if any(isinstance(n, ast.Return) for n in ast.walk(statement)) and i != len(body) - 1:
            raise ValueError(f"{name!r} returns before its last statement")
    stored = {n.id for n in ast.walk(ast.Module(body=body, type_ignores=[]))
              if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    free = {p for p, arg in zip(params, call.args)
            if isinstance(arg, ast.Name) and arg.id == p and p not in stored}
    used = _names(body) | set(params)
    renames = {}
    for local in sorted((stored | set(params)) - free):
        if local in taken:
            renamed = f"{name}_{local}"
            while renamed in taken or renamed in used:
                renamed += "_"
            renames[local] = renamed
    bindings = [ast.Assign(targets=[ast.Name(renames.get(p, p), ast.Store())], value=arg,
                           lineno=0)
                for p, arg in zip(params, call.args) if p not in free]
    body = [_Rename(renames).visit(s) for s in body]
    if body and isinstance(body[-1], ast.Return) and not returns:
        body = body[:-1] if body[-1].value is None else body[:-1] + [ast.Expr(body[-1].value)]
    return bindings + body


class _Rename(ast.NodeTransformer):
    def __init__(self, renames):
        self.renames = renames

    def visit_Name(self, node):
        if node.id in self.renames:
            return ast.copy_location(ast.Name(self.renames[node.id], node.ctx), node)
        return node
