import pytest

from pkd.method.layer_maps import layer_map


@pytest.mark.parametrize(
    "n, m, skip, last",
    [
        (12, 6, [2, 4, 6, 8, 10], [7, 8, 9, 10, 11]),
        (12, 3, [4, 8], [10, 11]),
        (6, 3, [2, 4], [4, 5]),
        (6, 2, [3], [5]),
        (24, 6, [4, 8, 12, 16, 20], [19, 20, 21, 22, 23]),
    ],
)
def test_paper_layer_maps(n, m, skip, last):
    assert layer_map("skip", n, m) == skip
    assert layer_map("last", n, m) == last


@pytest.mark.parametrize("n", range(3, 25))
def test_skip_is_distinct_increasing_and_below_teacher_top_for_any_depth(n):
    for m in range(2, n):
        layers = layer_map("skip", n, m)
        assert len(layers) == m - 1
        assert all(a < b for a, b in zip(layers, layers[1:]))
        assert 1 <= layers[0] and layers[-1] < n


def test_non_dividing_depth_uses_floor():
    assert layer_map("skip", 12, 5) == [2, 4, 7, 9]


@pytest.mark.parametrize(
    "strategy, n, m, message",
    [
        ("skip", 6, 6, "smaller than the teacher"),
        ("last", 6, 8, "smaller than the teacher"),
        ("skip", 6, 1, "at least 2"),
        ("last", 12, 0, "at least 2"),
        ("middle", 12, 6, "unknown layer map"),
    ],
)
def test_invalid_combinations_raise(strategy, n, m, message):
    with pytest.raises(ValueError, match=message):
        layer_map(strategy, n, m)


def test_larger_teacher_study_maps_24_layers_to_6():
    # The paper's BERT-large teacher (N = 24) and 6-layer student (docs/method.md, larger-teacher study).
    assert layer_map("skip", 24, 6) == [4, 8, 12, 16, 20]
    assert layer_map("last", 24, 6) == [19, 20, 21, 22, 23]
    # The offline proof's tiny "large" teacher (8 layers) and 2-layer student.
    assert layer_map("skip", 8, 2) == [4] and layer_map("last", 8, 2) == [7]

