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


def test_keras_fed_by_two_threads_trains_to_the_weights_of_one_thread():
    """The batches arrive in the same order whatever the number of threads gathering them: fit, with its
    shuffle of whole batches, ends on the same weights bit for bit."""
    import keras

    from cifar10.training.runtime import seed_everything

    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float16)
    y = np.arange(200) % 3

    def trained(workers: int) -> list[np.ndarray]:
        seed_everything(7, True)
        batches = HalfBatches(x, y, batch_size=16, shuffle=True)
        batches.workers = workers
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
        model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(batches, epochs=3, verbose=0)
        return model.get_weights()

    assert HalfBatches(x, y).workers == 2  # what the transfer stage feeds fit
    two, one, again = trained(2), trained(1), trained(2)
    for a, b, c in zip(two, one, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
