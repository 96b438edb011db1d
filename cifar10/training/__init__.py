"""Training: the CNN fit loop with early stopping and exact resume, the transfer head and fine-tuning,
the per-epoch history, input streams, devices (what TensorFlow sees; tf.distribute) and process set-up
(seeds, precision)."""
