"""What the writer and the plugin agree on: the plugin name, tags, and the record layout.

A record is one translated sentence at one step, logged as a tensor summary of data class
``BLOB_SEQUENCE`` (so TensorBoard's Rust data server keeps it) under the tag
``seq2seq_attention/<example id>``. Its three blobs:

0. ``meta``: UTF-8 JSON with ``label``, ``kind`` (``dev`` or ``translate``), ``source``,
   ``reference``, ``output``, ``bleu``, ``score``, ``src_pieces``, ``trg_pieces`` (both ending
   in ``</s>``) and the shapes ``cross_shape`` ``[L, H, T, S]`` and ``encoder_shape``
   ``[L, H, S, S]`` (``null`` without encoder self-attention);
1. ``cross``: the decoder's attention over the source, little-endian float16, ``cross_shape``;
2. ``encoder``: the encoder's self-attention, float16, ``encoder_shape`` (empty when absent).
"""

from __future__ import annotations

PLUGIN_NAME = "seq2seq_attention"
TAG_PREFIX = f"{PLUGIN_NAME}/"
FORMAT_VERSION = 1
META, CROSS, ENCODER = 0, 1, 2  # blob indices
WEIGHT_DTYPE = "<f2"
