"""Every page of the built website, loaded in a real browser with no network.

The website (``_build/html``, from ``make build``) is served on 127.0.0.1 and each page
is opened in Debian's Chromium through Playwright. A page passes when it loads, its
math is typeset by MathJax, its images and saved widgets render, it raises no
JavaScript error, and it requests nothing from outside 127.0.0.1 (so the book also
works offline). A screenshot of each page goes to ``_build/screenshots/``.

``BOOK_HTML`` points the test at another built website (to check that it can fail).
"""
import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = HTML.parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Known errors that leave the page intact: sphinx-thebe's script declares its URL constant
# twice, and the widget manager's "Cannot read properties of undefined (reading 'Queue')".
HARMLESS_ERRORS = ("'THEBE_JS_URL' has already been declared", "reading 'Queue'")
# Text that MathJax replaces when it typesets; left in the visible text, math did not render.
RAW_MATH = ("$$", "\\frac", "\\mathbb", "\\begin{", "\\(", "\\[")
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.browser


def site_pages():
    """Every HTML page of the website, relative to its root (Sphinx's own folders excluded)."""
    if not (HTML / "index.html").is_file():
        return ["<no website built>"]
    skip = {"_static", "_sources", "_images", "_downloads"}
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html") if not skip & set(p.relative_to(HTML).parts))


@pytest.fixture(scope="module")
def server():
    """The website served by Python's http.server on a free port of 127.0.0.1."""
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    # Debian's Chromium, never a browser that `playwright install` would download; Playwright
    # starts it with a fresh temporary profile (--user-data-dir) each time.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("page_path", site_pages())
def test_page_renders_offline(page_path, server, browser):
    assert page_path != "<no website built>", f"no website at {HTML}: build it first (`make build`)."
    problems = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    def only_local(route):
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and not url.startswith(server + "/"):
            problems.append(f"request to outside 127.0.0.1 (blocked): {url}")
            route.abort()
        else:
            route.continue_()

    def js_error(text):
        if not any(harmless in text for harmless in HARMLESS_ERRORS):
            problems.append(f"JavaScript error: {text}")

    def http_error(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    context.route("**/*", only_local)
    page.on("response", http_error)
    page.on("pageerror", lambda error: js_error(str(error)))
    page.on("console", lambda message: message.type == "error" and js_error(message.text))
    try:
        url = f"{server}/{page_path}"
        response = page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
        assert response is not None and response.status == 200, f"{page_path}: HTTP {response and response.status}"
        if 'http-equiv="refresh"' in (HTML / page_path).read_text().lower():
            # A redirect page (index.html): check the page it leads to has loaded.
            page.wait_for_url(lambda target: target != url, wait_until="load", timeout=TIMEOUT_MS)
        problems += math_problems(page) + image_problems(page) + widget_problems(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / (page_path.replace("/", "__").removesuffix(".html") + ".png"), full_page=True)
    finally:
        context.close()
    assert not problems, f"{page_path}:\n  " + "\n  ".join(problems)


def math_problems(page):
    """Every Sphinx math element holds MathJax output, and no raw LaTeX is left in the visible text."""
    problems = []
    n_math = page.locator(".math").count()
    if n_math:
        # MathJax is loaded with `defer`; typesetting finishes when its startup promise resolves.
        try:
            page.wait_for_function("() => window.MathJax?.startup?.promise", timeout=TIMEOUT_MS)
            page.evaluate("() => MathJax.startup.promise")
        except PlaywrightError as error:
            problems.append(f"MathJax did not start: {error.message.splitlines()[0]}")
    untypeset = page.locator(".math:not(:has(mjx-container))").count()
    if untypeset:
        problems.append(f"{untypeset} of {n_math} math elements not typeset by MathJax")
    # Code cells may legitimately contain LaTeX (plot labels): look at the prose only.
    text = page.evaluate(
        """() => {
            const main = (document.querySelector('main') || document.body).cloneNode(true);
            main.querySelectorAll('pre, code, .highlight, script, style, mjx-container').forEach(e => e.remove());
            return main.innerText;
        }"""
    )
    problems += [f"raw LaTeX {raw!r} left in the text near: {excerpt(text, raw)!r}" for raw in RAW_MATH if raw in text]
    return problems


def image_problems(page):
    """Every <img> has loaded (a broken or missing image has naturalWidth 0)."""
    broken = page.evaluate(
        """async () => {
            const images = Array.from(document.images);
            images.forEach(img => { img.loading = 'eager'; });
            await Promise.all(images.map(img => img.complete ? null :
                new Promise(resolve => { img.onload = img.onerror = resolve; })));
            return images.filter(img => img.naturalWidth === 0).map(img => img.currentSrc || img.src);
        }"""
    )
    return [f"image did not load: {src}" for src in broken]


def widget_problems(page):
    """Every saved widget view was rendered by the widget manager."""
    n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if not n_views:
        return []
    try:
        page.wait_for_function(
            f"() => document.querySelectorAll('.widget-subarea > *').length >= {n_views}", timeout=TIMEOUT_MS
        )
    except PlaywrightError:
        rendered = page.locator(".widget-subarea > *").count()
        return [f"{rendered} of {n_views} saved widgets rendered"]
    return []


def excerpt(text, raw, width=60):
    at = text.index(raw)
    return " ".join(text[max(0, at - width) : at + width].split())
