"""Lightweight OpenPose (Osokin 2018): its network (:mod:`.network`) and its own decoding
of the network's maps into people (:mod:`.decode`)."""
