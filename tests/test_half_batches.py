"""HalfBatches: every row once per epoch, cast to float32 one batch at a time, in a seeded order."""
import numpy as np

from cifar10.training.half_batches import HalfBatches


def _epoch(batches: HalfBatches) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(batches[i] for i in range(len(batches))))
    batches.on_epoch_end()
    return np.concatenate(xs), np.concatenate(ys)


def test_every_row_once_per_epoch_in_float32_and_a_new_seeded_order():
    x = np.arange(23 * 2, dtype=np.float16).reshape(23, 2)
    y = np.arange(23)
    np.random.seed(5)
    batches = HalfBatches(x, y, batch_size=4, shuffle=True)
    assert len(batches) == 6  # the last batch is short
    assert batches[0][0].dtype == np.float32 and batches[0][0].shape == (4, 2)
    first, second = _epoch(batches), _epoch(batches)
    for xs, ys in (first, second):
        assert sorted(ys) == list(range(23))
        np.testing.assert_array_equal(xs, x[ys].astype(np.float32))  # rows keep their labels
    assert not np.array_equal(first[1], second[1])  # reshuffled between epochs
    np.random.seed(5)
    again = HalfBatches(x, y, batch_size=4, shuffle=True)
    np.testing.assert_array_equal(_epoch(again)[1], first[1])  # the same seed, the same order


def test_unshuffled_batches_keep_the_order_and_may_have_no_labels():
    x = np.linspace(0, 1, 10, dtype=np.float16)[:, None]
    batches = HalfBatches(x, batch_size=3)
    out = np.concatenate([batches[i] for i in range(len(batches))])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))
