"""Translation as a service (``seq2seq-serve``): an HTTP app (:mod:`.app`) over the one translator
front door, with dynamic batching of concurrent requests (:mod:`.batching`), checked request
bodies (:mod:`.requests`), Prometheus metrics (:mod:`.metrics`) and a page that draws the
attention with the TensorBoard tab's modules (``static/``).

Needs the ``serve`` extra. May import tbplugin (its page modules), inspect, decode and below;
only :mod:`seq2seq.cli` imports it.
"""
