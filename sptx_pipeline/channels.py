"""Channel names, once: the three splice channels every splice model (SpTransformer, SpliceAI)
puts first, in this order. Torch-free, so the table and track code can use them."""

from __future__ import annotations

SPLICE_CHANNELS = ("no_splice", "acceptor", "donor")  # softmax over these; later ones: sigmoid
N_SPLICE_CHANNELS = len(SPLICE_CHANNELS)
