"""Training: the CNN fit loop with early stopping and exact resume, every optimizer and learning-rate
schedule (the CNN's and the transfer phases'), the imbalance remedies, the transfer head and fine-tuning, the per-epoch history, input
streams and the batched prediction pass, devices (what TensorFlow sees; tf.distribute) and each
workload's precision."""
