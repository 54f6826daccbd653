"""Shared code of the book: everything two chapters need lives here, once.

Modules, one concept each:

- ``profile``: the ``BOOK_PROFILE`` switch (quick | full), the device and the run banner
- ``paths``: where data, caches, checkpoints and results live
- ``data``: MNIST and Imagenette as in-memory uint8 tensors with the report's splits
"""
from .profile import PROFILE, banner, device, pick

__all__ = ["PROFILE", "banner", "device", "pick"]
