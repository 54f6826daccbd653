"""Serve the latent explorer's script, and load it on the pages that show an explorer.

A chapter's explorer (``helpers/explorer_page.py``) is a block of HTML with its data;
``explorer/latent_explorer.js`` turns it into live controls that decode in the browser.
The script finds onnxruntime-web in ``_static/onnxruntime/`` and the decoders in
``_static/explorer/``, both in ``web_assets/`` (``make web-assets explorer-assets``) and
served by the ``offline_assets`` extension; without them the page shows its animation.
"""
from pathlib import Path

SCRIPT = "latent_explorer.js"
MARKER = "latent-explorer-data"  # the class of the explorer's data block in a page's HTML


def add_static_folder(app, config):
    config.html_static_path = [*config.html_static_path, str(Path(__file__).resolve().parent / "explorer")]


def load_on_explorer_pages(app, pagename, templatename, context, doctree):
    # Called while each page is written; a script added now goes into this page only.
    if MARKER in context.get("body", ""):
        app.add_js_file(SCRIPT)


def setup(app):
    app.connect("config-inited", add_static_folder)
    app.connect("html-page-context", load_on_explorer_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
