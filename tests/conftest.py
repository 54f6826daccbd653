"""Unit tests run in the quick profile: with the real data when DGM_DATA points at it,
on the synthetic stand-in otherwise (a fresh offline clone). Set before helpers is imported."""
import os

os.environ.setdefault("BOOK_PROFILE", "quick")
