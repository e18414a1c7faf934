"""Resolve the docstrings' short Python cross references in the API reference.

A docstring names its neighbours briefly (:class:`AttackResult`, :func:`train_model`) where
Sphinx, resolving from the module being documented, wants the module the object is documented
in (``advtut.attacks.base.AttackResult``). When Sphinx finds no target, this looks for the one
documented ``advtut`` object whose full name ends with the reference (or, for a dotted reference
such as ``advtut.plotting.plot_explorer_view``, whose last part it shares) and links to it. A
name that matches nothing, or more than one object, stays unresolved, so with ``-n -W`` a broken
or ambiguous reference still fails the build.
"""
from __future__ import annotations

from sphinx.util.nodes import make_refnode

_ROLE_TYPES = {"func": {"function", "method"}, "meth": {"method", "function"},
               "class": {"class", "exception"}, "exc": {"exception", "class"},
               "data": {"data", "attribute"}, "attr": {"attribute", "data", "property"},
               "mod": {"module"}, "obj": None}


def _candidates(objects: dict, target: str) -> list[str]:
    exact = [n for n in objects if n == target or n.endswith("." + target)]
    if exact or "." not in target:
        return exact
    head, last = target.split(".")[0], target.rsplit(".", 1)[1]
    return [n for n in objects if n.startswith(head + ".") and n.rsplit(".", 1)[1] == last]


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip(".~")
    if not target or target.startswith("_"):
        return None
    domain = env.get_domain("py")
    # full name -> (docname, anchor, kind); modules are registered as objects of kind "module"
    objects = {name: (o.docname, o.node_id, o.objtype) for name, o in domain.objects.items()
               if name == "advtut" or name.startswith("advtut.")}
    names = _candidates(objects, target)
    wanted = _ROLE_TYPES.get(node.get("reftype"))
    if len(names) > 1 and wanted:  # prefer the objects of the role's kind
        names = [n for n in names if objects[n][2] in wanted] or names
    if len(names) != 1:
        return None
    docname, anchor, _ = objects[names[0]]
    return make_refnode(app.builder, node.get("refdoc"), docname, anchor, contnode, names[0])


def setup(app):
    app.connect("missing-reference", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
