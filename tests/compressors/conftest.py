"""Compressor suite: this folder goes on sys.path so that test modules can import the shared
`registry` (pytest runs in importlib mode, which does not add test folders itself)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
