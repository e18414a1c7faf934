"""Drop duplicate <script> entries from every HTML page.

Sphinx 7.4 with sphinx-thebe 0.3 emits the inline script ``const THEBE_JS_URL = ...`` twice, so
every page logs ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in the
browser. Sphinx fixed it in 8.x, out of reach under Jupyter Book 1; this keeps the first copy of
each script (same file and same attributes, inline body included).
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        # inline scripts come with filename None or "" depending on who added them
        filename = str(js.filename or "") if hasattr(js, "filename") else str(js)
        key = (filename, tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
