"""Makes ``python -m pytest`` test the installed package, like the ``pytest`` script does.

``python -m`` puts the current directory first on ``sys.path``; run from the repository root,
that would import the source ``pyqsgd/`` folder, which has no compiled ``_core``.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]
