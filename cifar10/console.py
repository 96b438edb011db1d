"""What a stage prints: its own progress and the warnings that matter, not library start-up noise.

TensorFlow writes C++ banners (oneDNN notice, "Could not find cuda drivers", absl's "All log messages
before absl::InitializeLog()", the CUDA build's "Unable to register cuDNN factory") from static
initialisers while its libraries load, before any logging setting applies, and a cuInit error when it
first looks for GPUs on a machine without one: `quiet_tensorflow` imports TensorFlow and lets it find
its devices with stderr captured, and passes on only lines that are not those banners. It sets no
variable TensorFlow reads: every device stays visible, and the log level of what TensorFlow prints
later is the user's (the Makefile exports TF_CPP_MIN_LOG_LEVEL=3). `PIPELINE_VERBOSE=1` shows everything.
Progress bars (tqdm) appear only on a terminal: logs keep one line per epoch instead of a bar per batch.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

VERBOSE_ENV = "PIPELINE_VERBOSE"
_BANNER = re.compile(
    r"All log messages before absl::InitializeLog\(\)|oneDNN custom operations are on|Could not find cuda drivers"
    r"|cpu_feature_guard|To enable the following instructions|failed call to cuInit|rebuild TensorFlow with the"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|TF-TRT Warning"
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_tensorflow() -> None:
    """Import TensorFlow and let it find its devices now, without its start-up banners (unless
    PIPELINE_VERBOSE is set)."""
    if verbose() or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            # Device discovery, done once per process, is where a CUDA build without a GPU logs its
            # cuInit error. It sets up no runtime: strategies and device settings can still follow.
            tensorflow.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not _BANNER.search(line):  # anything unexpected still shows
                    print(line, file=sys.stderr)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # e.g. retracing notices: TensorFlow's business, not the user's


def progress(total: int | None, desc: str, unit: str = "img", **options):
    """A progress bar on stderr for a terminal (ETA, rate); nothing in a log file."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0, smoothing=0.1,
                disable=None, leave=False, **options)


def batch_progress(desc: str, unit: str = "batch"):
    """A Keras callback showing the batches of each epoch (training) or of a prediction as a progress bar."""
    import keras

    class BatchProgress(keras.callbacks.Callback):
        bar = None

        def _start(self, total, label):
            self.bar = progress(total or 0, label, unit)

        def on_epoch_begin(self, epoch, logs=None):
            self._start(self.params.get("steps"), f"{desc} epoch {epoch + 1}")

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.close()

        def on_predict_begin(self, logs=None):
            self._start(self.params.get("steps"), desc)

        def on_predict_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_predict_end(self, logs=None):
            self.bar.close()

    return BatchProgress()
