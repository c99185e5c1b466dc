"""Tests for data/buckets.py: flat storage, bucketed training batches, sorted evaluation batches."""

import pytest
import torch

from rnnkit.data.buckets import BucketBatches, Sequences, sorted_batches


def make(n: int = 100, seed: int = 0) -> Sequences:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 40, (n,), generator=g).tolist()
    seqs = [list(range(2 + k, 2 + k + n_k)) for k, n_k in enumerate(lengths)]
    return Sequences(seqs, [k % 3 for k in range(n)])


def test_batch_pads_and_keeps_every_token():
    data = Sequences([[5, 6, 7], [8], [9, 10]], [0, 1, 0])
    (ids, lengths), labels, n = data.batch(torch.tensor([2, 0, 1]), pad_id=0)
    assert ids.tolist() == [[9, 10, 0], [5, 6, 7], [8, 0, 0]]
    assert lengths.tolist() == [2, 3, 1] and labels.tolist() == [0, 0, 1] and n == 6
    (ids, _), _, _ = data.batch(torch.tensor([1]), pad_id=0, pad_to=4)
    assert ids.tolist() == [[8, 0, 0, 0]]
    with pytest.raises(ValueError, match="pad_to=2"):
        data.batch(torch.tensor([0]), pad_to=2)


def test_bad_sequences():
    with pytest.raises(ValueError, match="no sequences"):
        Sequences([])
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        Sequences([[1], []])
    with pytest.raises(ValueError, match="2 labels for 3"):
        Sequences([[1], [2], [3]], [0, 1])


def test_epoch_covers_each_sequence_once_and_groups_lengths():
    data = make(200)
    batches = BucketBatches(data, 10, seed=3, pool=5)
    assert len(batches) == 20
    seen, spread_bucketed = [], []
    for step in range(len(batches)):
        (ids, lengths), labels, n = batches(step)
        assert ids.shape == (10, int(lengths.max())) and n == int(lengths.sum())
        for row, m in zip(ids, lengths.tolist()):
            seen.append(int(row[0]) - 2)  # sequence k starts with token 2 + k
            assert (row[m:] == 0).all()
        spread_bucketed.append(int(lengths.max() - lengths.min()))
    assert sorted(seen) == list(range(200))
    # a random batch of 10 lengths in [1, 40) spans about 30; pools of 50 sorted ones far less
    assert sum(spread_bucketed) / len(spread_bucketed) < 10


def test_batches_are_a_function_of_step_and_seed():
    data = make(120)
    a, b = BucketBatches(data, 8, seed=1), BucketBatches(data, 8, seed=1)
    other = BucketBatches(data, 8, seed=2)
    for step in (0, 5, 14, 15, 31, 3):  # out of order, across epochs
        assert torch.equal(a(step)[0][0], b(step)[0][0])
    assert not torch.equal(a(0)[0][0], other(0)[0][0]) or not torch.equal(
        a(1)[0][0], other(1)[0][0]
    )
    assert not all(torch.equal(a(s)[0][0], a(s + len(a))[0][0]) for s in range(3))  # epochs differ


def test_pad_to_pads_every_batch_to_one_length():
    batches = BucketBatches(make(50), 5, pad_to=40)
    assert {batches(s)[0][0].shape[1] for s in range(10)} == {40}


def test_bad_batch_settings():
    with pytest.raises(ValueError, match="fewer than one batch"):
        BucketBatches(make(5), 8)
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatches(make(5), 0)
    with pytest.raises(ValueError, match="need labels"):
        BucketBatches(Sequences([[1]] * 4), 2)


def test_sorted_batches_cover_all_longest_first():
    data = make(23)
    got = list(sorted_batches(data, 5))
    assert [len(i) for i, _ in got] == [5, 5, 5, 5, 3]
    order = torch.cat([i for i, _ in got])
    assert sorted(order.tolist()) == list(range(23))
    lengths = data.lengths[order]
    assert (lengths[:-1] >= lengths[1:]).all()
