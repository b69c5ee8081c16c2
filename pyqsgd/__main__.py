"""``python -m pyqsgd ...`` is the ``pyqsgd`` command."""
import sys

from .cli import main

sys.exit(main())
