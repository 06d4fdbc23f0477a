"""Length bucketing and left padding (engine.batching)."""

import numpy as np
import pytest

from jaxunc.engine.batching import bucket_for, left_pad, make_batches, parse_buckets


def test_bucket_for_picks_smallest_fitting_bucket_and_rounds_up_beyond():
    buckets = (4, 8, 16)
    assert [bucket_for(n, buckets) for n in (1, 4, 5, 16, 17, 33)] == [4, 4, 8, 16, 32, 48]


def test_left_pad_puts_last_token_in_last_column():
    ids, mask = left_pad([[1, 2, 3], [7]], 4, pad_id=0)
    np.testing.assert_array_equal(ids, [[0, 1, 2, 3], [0, 0, 0, 7]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1]])


def test_batches_have_fixed_shapes_and_cover_every_row_once():
    rng = np.random.default_rng(0)
    lists = [list(rng.integers(1, 50, size=int(n))) for n in rng.integers(1, 40, size=23)]
    batches = make_batches(lists, batch_size=4, buckets=(8, 16, 32, 64), pad_id=0)
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(23))
    for b in batches:
        assert b.input_ids.shape[0] == 4 and b.input_ids.shape == b.attention_mask.shape
        for k, r in enumerate(b.rows):
            n = len(lists[r])
            assert b.attention_mask[k].sum() == n
            np.testing.assert_array_equal(b.input_ids[k, -n:], lists[r])
    assert len({b.input_ids.shape for b in batches}) <= 4


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="engine.buckets"):
        parse_buckets("64,abc")
    with pytest.raises(ValueError, match="row 1: empty prompt"):
        make_batches([[1], []], 2, (4,), 0)
