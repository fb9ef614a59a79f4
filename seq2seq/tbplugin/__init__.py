"""The "attention" tab of TensorBoard: a dynamic plugin (``seq2seq_attention``) shipped with us.

:mod:`seq2seq.inspect.attention_records` writes the records (at every validation, and from
``seq2seq-translate tensorboard=DIR``); :mod:`.plugin` serves them and the page (``static/``) to
TensorBoard, and :mod:`.views` turns a record into the JSON the page draws. Importing this
package loads nothing heavy: TensorBoard imports the plugin in every session.

May import :mod:`seq2seq.inspect` and below; nothing in the package imports it.
"""
