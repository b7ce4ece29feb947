"""posecli: multi-person 2D human pose estimation over video (CMU CPM/PAF)."""

__version__ = "0.1.0"
