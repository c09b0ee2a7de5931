"""Drop repeated inline <script> bodies from every page.

Some extensions of Jupyter Book 1 (sphinx-thebe, sphinx-togglebutton) register
their inline configuration scripts once per reading pass, and a build with a
notebook cache makes more than one pass, so each page declared
`const THEBE_JS_URL` twice: a JavaScript error in every page. Files are
deduplicated by Sphinx already; this does the same for inline bodies.
"""

from sphinx.application import Sphinx


def dedupe(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    seen, kept = set(), []
    for script in context.get("script_files", []):
        body = (
            getattr(script, "attributes", {}).get("body")
            if not getattr(script, "filename", None)
            else None
        )
        if body is not None:
            if body in seen:
                continue
            seen.add(body)
        kept.append(script)
    context["script_files"] = kept


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
