"""Result records of the reference twins."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["Encoded", "Selected"]


class Encoded(NamedTuple):
    """A twin's output: the message sections it would send and the vector the receiver decodes."""

    sections: List[Tuple[int, np.ndarray]]
    y: np.ndarray  # float32, shape (d,)


class Selected(NamedTuple):
    """A chain first stage's output: its own sections and the sub-vector the next stage sees."""

    sections: List[Tuple[int, np.ndarray]]
    indices: Optional[np.ndarray]  # None = dense (all d coordinates, in order)
    values: np.ndarray  # float32
