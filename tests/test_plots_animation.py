"""The animation player needs nothing from the network, so it works in the offline book."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

from helpers.plots import animation_html  # noqa: E402


def test_animation_html_is_a_player_with_no_external_links():
    fig, ax = plt.subplots(figsize=(1, 1))
    (line,) = ax.plot([0, 1], [0, 0])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
    plt.close(fig)
    raw = anim.to_jshtml()
    assert re.search(r'href="https?://', raw), "matplotlib no longer links a CDN: animation_html can be simplified"
    html = animation_html(anim).data
    assert not re.search(r'(src|href)="https?://', html), "the player still loads something from the network"
    assert html.count("data:image/png;base64") == 3 and 'type="range"' in html, "frames or slider missing"
