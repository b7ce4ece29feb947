"""People through time: track ids across frames and One Euro smoothing of keypoints.

``params`` (settings and defaults), ``tracker`` (OKS assignment, track
lifecycle, lost-track buffer in seconds), ``one_euro`` (the filter), ``frames``
(per-frame results in, tracked results out) and ``stage`` (the pipeline stage
in front of the sinks). Everything here runs on the CPU, frame by frame.
"""

from .frames import FrameTracker, frame_time, track_frames
from .one_euro import KeypointSmoother, OneEuroFilter
from .params import FALLBACK_FPS, SmoothParams, TrackParams
from .tracker import Tracker

__all__ = ["FALLBACK_FPS", "FrameTracker", "KeypointSmoother", "OneEuroFilter", "SmoothParams",
           "TrackParams", "Tracker", "frame_time", "track_frames"]
