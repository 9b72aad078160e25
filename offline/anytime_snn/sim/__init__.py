"""Simulators. ``reference`` (NumPy oracle), ``streaming`` (NumPy, batch 1, for the node) and
``tf_engine`` (batched TensorFlow/XLA, for evaluation and optimization; import it explicitly, it
loads TensorFlow). All three produce identical spike trains, predictions and event counts."""
