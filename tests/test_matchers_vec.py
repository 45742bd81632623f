"""The code-matrix helper behind every comparator: fast paths agree with numpy's conversion."""
from __future__ import annotations

import random

import numpy as np
import pytest

from matchers._vec import _astype_codes, code_matrix, lengths, row_sums


def obj(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


@pytest.mark.parametrize("values,width", [
    (["43102819900307123X", "110105198511220048"], 18),           # uniform ASCII: reshape path
    (["431022", "110105", "440305"], 8),                           # uniform, narrower than width
    (["1990-03-07", "1990-03", "1990", ""], 10),                   # variable ASCII: scatter path
    (["张伟", "欧阳晓棠", "", "买买提·艾力"], 4),                   # Han, with overflow
    (["张伟", "章玮"], 2),                                          # uniform Han, exact width
    (["abc\x1fdef", "x"], 4),                                       # separator inside: fallback
    (["ZHANG WEI", "张伟"], 12),                                    # mixed scripts
    (["a"], 3),
])
def test_code_matrix_matches_numpy_conversion(values, width):
    fast, over = code_matrix(obj(values), width)
    slow, slow_over = _astype_codes(obj(values), width)
    assert fast.shape == (len(values), width)
    assert fast.astype(np.uint32).tolist() == slow.astype(np.uint32).tolist()
    assert over.tolist() == slow_over.tolist() == [len(v) > width for v in values]


def test_code_matrix_random_strings():
    rng = random.Random(0)
    alphabet = "0123456789X-张伟章玮·"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(2000)]
    fast, over = code_matrix(obj(values), 9)
    slow, slow_over = _astype_codes(obj(values), 9)
    assert (fast.astype(np.uint32) == slow.astype(np.uint32)).all()
    assert (over == slow_over).all()
    assert lengths(fast).tolist() == [min(len(v), 9) for v in values]


def test_non_str_values_fall_back():
    codes, over = code_matrix(np.array(["ab", None], dtype=object), 3)
    assert codes.tolist() == [[97, 98, 0], [0, 0, 0]] and over.tolist() == [False, False]


def test_empty_input_and_row_sums():
    codes, over = code_matrix(obj([]), 5)
    assert codes.shape == (0, 5) and over.shape == (0,)
    m = np.array([[True, False, True], [False, False, False]])
    assert row_sums(m).tolist() == [2, 0]
