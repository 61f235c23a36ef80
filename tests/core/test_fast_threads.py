"""tinygan/fast_threads.py: the large elementwise passes split over threads change nothing,
bit for bit, whatever the thread count (the updates, maxout forward and backward, dropout)."""

import threading

import numpy as np
import pytest

from tinygan import get_backend
from tinygan.fast import fast_threads
from tinygan.fast import GAN, SGD, Adam, paper_discriminator, paper_generator


@pytest.fixture
def split_everything(monkeypatch):
    """Every array split (MIN_ELEMENTS 1), with a record of the threads that ran parts."""
    monkeypatch.setattr(fast_threads, "MIN_ELEMENTS", 1)
    seen = set()
    real = fast_threads.run_split

    def spy(fn, n, size, align=1):
        def recorded(lo, hi):
            seen.add(threading.current_thread().name)
            fn(lo, hi)
        real(recorded, n, size, align)
    monkeypatch.setattr(fast_threads, "run_split", spy)
    previous = fast_threads.threads()
    yield seen
    fast_threads.set_threads(previous)


def _gan(be, optimizer):
    G = paper_generator(noise_dim=6, hidden=24, out_dim=20, backend=be)
    D = paper_discriminator(in_dim=20, units=8, pieces=3, backend=be)
    opt = (lambda net: SGD(net, lr=0.1, momentum=0.5)) if optimizer == "sgd" \
        else (lambda net: Adam(net, lr=1e-3))
    return GAN(G, D, opt(G), opt(D), noise_dim=6)


def _steps(threads, optimizer, seed=3):
    fast_threads.set_threads(threads)
    be = get_backend("numpy", seed=seed)
    gan = _gan(be, optimizer)
    real = be.uniform(0, 1, (37, 20))
    stats = [gan.train_step(real) for _ in range(3)]
    return (gan.G.param_vector.copy(), gan.D.param_vector.copy(),
            [float(s["d_loss"]) for s in stats], gan.D.layers)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_step_bit_for_bit_with_one_two_or_three_threads(split_everything, optimizer):
    g1, d1, loss1, _ = _steps(1, optimizer)
    assert split_everything == {threading.main_thread().name}
    for threads in (2, 3):
        split_everything.clear()
        g, d, loss, _ = _steps(threads, optimizer)
        assert len(split_everything) == threads          # the parts really ran on the threads
        np.testing.assert_array_equal(g, g1)
        np.testing.assert_array_equal(d, d1)
        assert loss == loss1


def test_bounds_cover_the_range_in_aligned_parts():
    for n, parts, align in [(10, 3, 1), (100, 2, 16), (5, 8, 1), (1 << 20, 2, 1 << 16)]:
        b = fast_threads.bounds(n, parts, align)
        assert b[0][0] == 0 and b[-1][1] == n and len(b) <= parts
        assert all(hi == lo2 for (_, hi), (lo2, _) in zip(b, b[1:]))
        assert all(lo % align == 0 for lo, _ in b)


def test_a_failing_part_raises_on_the_caller(monkeypatch):
    monkeypatch.setattr(fast_threads, "MIN_ELEMENTS", 1)
    previous = fast_threads.set_threads(2)
    try:
        def fn(lo, hi):
            if lo > 0:
                raise RuntimeError("part failed")
        with pytest.raises(RuntimeError, match="part failed"):
            fast_threads.run_split(fn, 10, 10)
    finally:
        fast_threads.set_threads(previous)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_takes_a_positive_integer(bad):
    with pytest.raises(ValueError, match="positive integer"):
        fast_threads.set_threads(bad)
