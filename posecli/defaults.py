"""Defaults shared by the library and the command line (a light module: no torch)."""

#: Pixels of network input per cell of the output maps.
STRIDE = 8
#: Network input height in pixels (the CMU model's training size).
DEFAULT_NET_HEIGHT = 368
#: Frames per network batch.
DEFAULT_BATCH_SIZE = 8
