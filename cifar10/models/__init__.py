"""Model builders: side-effect-free functions returning functional Keras models (compile and fit live elsewhere),
and the layers of our own they use in training (fused batch norm, 16-bit dropout masks, pad-and-crop, cutout)."""
