"""Model builders: side-effect-free functions returning functional Keras models (compile and fit live elsewhere)."""
