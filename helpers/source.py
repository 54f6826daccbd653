"""Show the book's own code inside a chapter, so the page and the package never disagree."""
import inspect

from IPython.display import Markdown, display


def show(obj) -> None:
    """Display the source of a function, class or method as a highlighted code block."""
    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))
