"""The latent explorer on the built website decodes in the browser, and matches PyTorch.

On the explorer page (served on 127.0.0.1, opened in Chromium as in ``test_pages.py``), in each of
its explorers (one per data set), every control is moved and every move must redraw the canvas; for
fixed latent codes the canvas must equal PyTorch's decoding of the same code, from the shipped
weights, within 2/255 per pixel and colour channel on average; nothing may be requested from outside
127.0.0.1 and no JavaScript error may occur. With the runtime's WebAssembly blocked, each explorer
must say so and show its animation instead.
"""
import pytest
import torch
from playwright.sync_api import Error as PlaywrightError
from test_pages import HARMLESS_ERRORS, HTML, browser, server  # noqa: F401  (fixtures)

from helpers import explore, onnx_export

PAGE = "book/10_latent_explorer.html"
ROOT = ".latent-explorer"
LOAD_MS = 60_000  # compiling the 14 MB runtime on one thread takes a few seconds
TOLERANCE = 2 / 255

pytestmark = pytest.mark.browser


@pytest.fixture
def opened(server, browser):  # noqa: F811
    """(page, problems): the explorer page with requests outside 127.0.0.1 blocked and JS errors collected."""
    assert (HTML / PAGE).is_file(), f"no {PAGE} in {HTML}: build the website first (`make book`)."
    problems = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def only_local(route):
        if route.request.url.startswith(("http:", "https:")) and not route.request.url.startswith(server + "/"):
            problems.append(f"request to outside 127.0.0.1 (blocked): {route.request.url}")
            return route.abort()
        return route.continue_()

    def js_error(text):
        if not any(harmless in text for harmless in HARMLESS_ERRORS):
            problems.append(f"JavaScript error: {text}")

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("pageerror", lambda error: js_error(str(error)))
    page.on("console", lambda message: message.type == "error" and js_error(message.text))
    yield page, problems, f"{server}/{PAGE}"
    context.close()


def root(explorer: int) -> str:
    """JavaScript for the page's explorer number ``explorer`` (its .latent-explorer element)."""
    return f"document.querySelectorAll('{ROOT}')[{explorer}]"


def canvas(page, explorer: int) -> torch.Tensor:
    """An explorer's canvas as levels 0..255 of red, green and blue, 3 x H x W."""
    size, rgba = page.evaluate(f"""() => {{
        const c = {root(explorer)}.querySelector('canvas');
        return [[c.height, c.width], Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
    }}""")
    return torch.tensor(rgba, dtype=torch.float32).reshape(*size, 4)[..., :3].permute(2, 0, 1)


def draws(page, explorer: int) -> int:
    return int(page.evaluate(f"() => +{root(explorer)}.dataset.draws"))


def move(page, explorer: int, control: str, value) -> None:
    """Set a control (``data-control``) of an explorer to ``value`` as a reader would, and wait for the redraw."""
    before = draws(page, explorer)
    page.evaluate(f"""(value) => {{
        const e = {root(explorer)}.querySelector('[data-control="{control}"]');
        e.value = String(value);
        e.dispatchEvent(new Event(e.type === 'range' ? 'input' : 'change'));
    }}""", value)
    page.wait_for_function(f"() => +{root(explorer)}.dataset.draws > {before}", timeout=LOAD_MS)


def torch_pixels(model, code: torch.Tensor) -> torch.Tensor:
    """PyTorch's image of one base code D as the canvas draws it: levels 0..255, 3 x H x W (grey repeated)."""
    with torch.no_grad():
        image = explore.BaseDecoder(model)(code[None])[0]
    return (image.expand(3, -1, -1) * 255).round()


def test_every_control_redraws_and_matches_pytorch(opened):
    page, problems, url = opened
    page.goto(url, wait_until="load")
    explorers = page.locator(ROOT)
    assert explorers.count() >= 2, "the page has an explorer for MNIST and one for Imagenette"
    decode_ms = []
    for explorer in range(explorers.count()):
        element = explorers.nth(explorer)
        element.and_(page.locator('[data-state="ready"], [data-state="failed"]')).wait_for(timeout=LOAD_MS)
        status = element.locator(".latent-explorer-status").inner_text()
        assert element.get_attribute("data-state") == "ready", f"explorer {explorer} did not start: {status}"
        assert element.locator(".latent-explorer-fallback").is_hidden()
        data = page.evaluate(f"() => JSON.parse({root(explorer)}.querySelector('.latent-explorer-data').textContent)")
        for index, entry in enumerate(data["models"]):
            decode_ms += check_model(page, explorer, index, entry)
    print(f"in-browser decode: median {sorted(decode_ms)[len(decode_ms) // 2]:.2f} ms, "
          f"max {max(decode_ms):.2f} ms per image over {len(decode_ms)} moves")
    assert not problems, "\n".join(problems)


def check_model(page, explorer: int, index: int, entry: dict) -> list:
    """Pick model ``index`` of an explorer, compare fixed latents with PyTorch, move every control; the decode times."""
    shipped = onnx_export.shipped_model(entry["name"])
    assert shipped is not None and shipped[1] == entry["weights"], (
        f"{entry['label']}: the page was built from other weights than pretrained/ holds: rebuild the book")
    model = shipped[0]
    move(page, explorer, "model", index)
    move(page, explorer, "mode", 0)
    codes = [torch.tensor(e["code"]) for e in entry["endpoints"]]
    # Fixed latents: an endpoint itself (t = 0), and a point on the arc to another endpoint.
    move(page, explorer, "t", 0)
    gap = (canvas(page, explorer) - torch_pixels(model, codes[0])).abs().mean()
    assert gap <= TOLERANCE * 255, f"{entry['label']}: canvas differs from PyTorch by {gap:.2f}/255 on average"
    move(page, explorer, "kind", 1)
    move(page, explorer, "t", 0.37)
    point = explore.interpolate(codes[0], codes[1], 0.37, "spherical")[0]
    gap = (canvas(page, explorer) - torch_pixels(model, point)).abs().mean()
    assert gap <= TOLERANCE * 255, f"{entry['label']}: arc point differs from PyTorch by {gap:.2f}/255"

    # Every control changes the picture.
    decode_ms = []
    moves = [("t", 0.8), ("kind", 0), ("from", 2), ("to", len(codes) - 1)]
    if entry["pca"]:
        moves += [("mode", 1)] + [(f"pc{k + 1}", 2.5) for k in range(len(entry["pca"]["scales"]))]
    for control, value in moves:
        before = canvas(page, explorer)
        move(page, explorer, control, value)
        assert not torch.equal(canvas(page, explorer), before), f"{entry['label']}: moving {control} left the canvas as it was"
        decode_ms.append(float(page.evaluate(f"() => +{root(explorer)}.dataset.decodeMs")))
    if entry["pca"]:  # the mean code plus 2.5 sd along every direction, decoded by PyTorch
        mean, directions, scales = (torch.tensor(entry["pca"][key]) for key in ("mean", "directions", "scales"))
        gap = (canvas(page, explorer) - torch_pixels(model, mean + (2.5 * scales) @ directions)).abs().mean()
        assert gap <= TOLERANCE * 255, f"{entry['label']}: principal directions differ by {gap:.2f}/255"
        for k in range(len(entry["pca"]["scales"])):  # the sliders keep their values across models
            move(page, explorer, f"pc{k + 1}", 0)
    return decode_ms


def test_without_the_runtime_the_page_says_so_and_animates(opened):
    page, problems, url = opened
    page.route("**/*.wasm", lambda route: route.abort())
    page.goto(url, wait_until="load")
    explorers = page.locator(ROOT)
    for explorer in range(explorers.count()):
        element = explorers.nth(explorer)
        try:
            element.and_(page.locator('[data-state="failed"]')).wait_for(timeout=LOAD_MS)
        except PlaywrightError:
            pytest.fail(f"with no WebAssembly explorer {explorer} did not report failure (state "
                        f"{element.get_attribute('data-state')!r})")
        assert "could not load" in element.locator(".latent-explorer-status").inner_text()
        assert element.locator(".latent-explorer-fallback").is_visible()
        assert element.locator(".latent-explorer-fallback img").count() >= 1, "the animation's frame is missing"
    # The blocked runtime logs its own errors here, as it should; the page still asks nothing of the internet.
    assert not [p for p in problems if "outside 127.0.0.1" in p], problems
