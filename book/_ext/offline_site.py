"""Every page reads offline: nothing it loads comes from another host.

MathJax. Sphinx loads it from a CDN by default: without a network (or behind a
firewall) every equation shows as raw TeX. The pinned PyPI package
`sphinx-mathjax-offline` (requirements.txt) ships MathJax 3.2.2 with its
components and fonts. We copy that distribution into the site's
`_static/mathjax/` and point `mathjax_path` at the `tex-mml-chtml` component
(the one the CDN default loads). Nothing is committed by hand: the files come
from the installed package.

Animations. Matplotlib's JavaScript player (`to_jshtml`) links Font Awesome 4's
stylesheet from a CDN for its button icons. The theme serves Font Awesome 6
itself, which draws the same `fa fa-play`-style icons, so we drop that link
from the pages.

Widgets. _config.yml switches off myst-nb's ipywidgets loaders (require.js and
the widget manager, also from CDNs): the notebooks print text progress bars and
produce no widgets. tests/test_site.py and tests/test_browser.py check all this.
"""

import importlib.util
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

# Its import name has hyphens: found, not imported.
PACKAGE = "sphinx-mathjax-offline"
COMPONENT = "mathjax/tex-mml-chtml.js"  # relative to the site's _static/
FONT_AWESOME_LINK = re.compile(
    r"<link[^>]*\bhref=\"(https?:)?//[^\"]*font-awesome[^\"]*\"[^>]*>\n?"
)


def mathjax_distribution() -> Path:
    """The installed package's `static/` folder, which holds `mathjax/`."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ExtensionError(f"{PACKAGE} is not installed (requirements.txt)")
    static = Path(spec.origin).parent / "static"
    if not (static / COMPONENT).is_file():
        raise ExtensionError(f"{PACKAGE} has no {COMPONENT} under {static}")
    return static


def serve_mathjax_locally(app: Sphinx, config: Config) -> None:
    config.mathjax_path = COMPONENT
    static = str(mathjax_distribution())
    config.html_static_path = [*config.html_static_path, static]


def drop_remote_icon_fonts(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    if "body" in context:
        context["body"] = FONT_AWESOME_LINK.sub("", context["body"])


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", serve_mathjax_locally)
    app.connect("html-page-context", drop_remote_icon_fonts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
