"""The "attention" tab of TensorBoard: a dynamic plugin (``seq2seq_attention``) shipped with us.

``summary`` writes the records (at every validation, and from ``seq2seq-translate
tensorboard=DIR``); ``plugin`` serves them and the page (``static/``) to TensorBoard. Importing
this package loads nothing heavy: TensorBoard imports the plugin in every session.
"""
