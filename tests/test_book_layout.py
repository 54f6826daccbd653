"""The chapter files, the table of contents and the introduction's chapter map agree."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def toc_entries():
    """Pages listed in _toc.yml, root first, as paths without suffix (``book/02_data``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for chapter in toc.get("chapters") or []]


def chapter_files():
    return sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md"))


def test_toc_lists_exactly_the_chapters_in_book():
    on_disk = {f"book/{path.stem}" for path in chapter_files()}
    listed = toc_entries()
    assert len(listed) == len(set(listed)), f"_toc.yml lists a page twice: {listed}"
    assert not on_disk - set(listed), f"add these to _toc.yml (one `- file:` line each): {sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"_toc.yml lists pages that do not exist: {sorted(set(listed) - on_disk)}"


def test_toc_orders_chapters_by_number():
    numbers = [int(Path(entry).name.split("_")[0]) for entry in toc_entries()[1:]]
    assert numbers == sorted(numbers), f"_toc.yml chapters out of order: {toc_entries()[1:]}"


def test_intro_chapter_map_links_every_written_chapter():
    """Item N of the map links book/NN_*.{ipynb,md} once that chapter exists, and no longer says planned."""
    intro = (BOOK / "intro.md").read_text()
    for path in chapter_files():
        if path.name == "intro.md":
            continue
        number = int(path.name.split("_")[0])
        item = re.search(rf"^{number}\. (.*(?:\n   .*)*)", intro, flags=re.MULTILINE)
        assert item, f"book/intro.md has no item {number}. in its chapter map"
        assert f"]({path.name})" in item.group(1), (
            f"chapter {path.name} exists: item {number}. of the map in book/intro.md should link it "
            f"as [Title]({path.name})"
        )
        assert "(planned)" not in item.group(1), f"item {number}. of book/intro.md still says planned"


def test_code_shown_in_chapters_is_the_code_of_the_package():
    """``source.show(obj)`` outputs saved in a chapter equal ``obj``'s source today: the page and the package
    never disagree (re-run the cell, or the chapter, after changing shown code)."""
    import importlib
    import inspect
    import json

    def resolve(expr):
        module, *attributes = expr.strip().split(".")
        obj = importlib.import_module(f"helpers.{module}")
        for name in attributes:
            obj = getattr(obj, name)
        return obj

    for path in sorted(BOOK.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] != "code" or "source.show(" not in text:
                continue
            shown = [o["data"]["text/markdown"] for o in cell.get("outputs", [])
                     if "text/markdown" in o.get("data", {})]
            shown = ["".join(s) if isinstance(s, list) else s for s in shown]
            for expr, saved in zip(re.findall(r"source\.show\(([^)]+)\)", text), shown):
                current = f"```python\n{inspect.getsource(resolve(expr)).rstrip()}\n```"
                assert saved == current, f"{path.name}: the saved output of source.show({expr}) is stale"
