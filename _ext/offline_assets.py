"""Make the rendered book load MathJax, require.js and the widget manager from itself.

By default Sphinx and myst-nb point every page at CDNs, so a book opened offline
shows raw LaTeX and blank widgets. ``make web-assets`` copies the three libraries
from their npm packages into ``web_assets/`` (gitignored); when that folder is
complete, this extension ships it as static files and points the pages at it.
When it is not (no npm on this machine), the build keeps the CDN defaults and says
so: the book then renders math and widgets only with internet access.
"""
from pathlib import Path

from sphinx.util import logging

HERE = Path(__file__).resolve().parent
WEB_ASSETS = HERE.parent / "web_assets"
# Paths inside web_assets/, which Sphinx copies to the site's _static/ folder.
MATHJAX = "mathjax/tex-mml-chtml.js"
REQUIRE = "require.js"
WIDGET_MANAGER = "html-manager/embed-amd.js"
REQUIRE_PATHS = "require_paths.js"  # in _ext/static/: tells require.js where the widget fonts are

logger = logging.getLogger(__name__)


def use_offline_assets(app, config):
    missing = [name for name in (MATHJAX, REQUIRE, WIDGET_MANAGER) if not (WEB_ASSETS / name).is_file()]
    if missing:
        # Not a warning: -W would turn it into an error, and an online book is still a book.
        logger.info(
            "offline web assets missing (%s): pages load MathJax and the widget manager from CDNs; "
            "run `make web-assets` (needs npm) for a book that renders offline.",
            ", ".join(f"web_assets/{name}" for name in missing),
        )
        return
    config.html_static_path = [*config.html_static_path, str(WEB_ASSETS), str(HERE / "static")]
    config.mathjax_path = MATHJAX
    # In this order: the widget manager is an AMD module, loaded by require.js.
    config.nb_ipywidgets_js = {REQUIRE: {}, REQUIRE_PATHS: {}, WIDGET_MANAGER: {}}
    logger.info("offline web assets: MathJax, require.js and the widget manager served from _static/")


def setup(app):
    app.connect("config-inited", use_offline_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
