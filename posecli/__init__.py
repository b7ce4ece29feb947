"""posecli: multi-person 2D human pose estimation over video (CMU CPM/PAF).

The Python API: :func:`load_model` finds and loads weights; :func:`estimate`
returns the people of each frame; :func:`posecli.parse.parse_batch` parses the
raw outputs of any network with the CMU output layout.
"""

__version__ = "0.1.0"

from .parse import ParseParams, Person
from .pipeline import PoseModel, estimate, load_model

__all__ = ["ParseParams", "Person", "PoseModel", "__version__", "estimate", "load_model"]
