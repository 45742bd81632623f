"""The ID number's blocking pieces as int64 codes (reconcile.keys.ID_PIECES): equal codes exactly
when the pieces' texts are equal, empty where there is no piece, and the texts again wherever a
person reads a key (a skipped block's warning)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.blocking import MATCH_PASSES, candidate_pairs
from reconcile.dedupe_blocking import key_hashes
from reconcile.keys import EMPTY_PIECE, ID_PIECES, id_piece_codes, id_piece_texts, piece_code
from reconcile.privacy import mask_ids_in_text
from tests.test_within_passes import registry, valid_id

# what cleaning leaves in id_clean: valid numbers (an X check character among them), twins' numbers
# (same region and birth date), one-character typos, an impossible birth date kept for the typo,
# Excel's 15 kept digits, old 15-digit numbers, a foreign number with letters, short and long junk
NUMBERS = [
    valid_id("43102819900307123"), valid_id("43102819900307124"), valid_id("43102819900307125"),
    "43102819900307123" + "X", "43102819900307129X", "431028199003071230",
    "431028199013071234", "43102819900731123X", "431028199003071",
    "431028900307123", "431028900307123", "ABC123456789012", "43102819900307123A",
    "4310281990030712345678901234567890", "12345", "123456", "", "", "甲乙丙丁戊己庚辛",
    "G1234567", "x31028199003071234", "00000000000000", "0000000000000", "431028１９９００３０７１２３",
]


def _partition(values) -> np.ndarray:
    return pd.factorize(pd.Series(list(values), dtype=object), sort=False)[0]


def _check(numbers: list[str]) -> None:
    arr = np.array(numbers, dtype=object)
    codes = id_piece_codes(arr)
    for k, name in enumerate(ID_PIECES):
        texts = [id_piece_texts(s)[k] for s in numbers]
        assert codes[k].dtype == np.int64, name
        # one by one as in numpy
        assert codes[k].tolist() == [piece_code(t) for t in texts], name
        # the same records share a code as share a text, and no text is EMPTY_PIECE but ''
        assert (_partition(codes[k].tolist()) == _partition(texts)).all(), name
        assert ((codes[k] == EMPTY_PIECE) == np.array([t == "" for t in texts])).all(), name


def test_equal_codes_exactly_where_the_pieces_texts_are_equal():
    _check(NUMBERS)
    # and what the texts were before the codes: 14 + 9 + 13 characters of an 18-character number
    assert id_piece_texts("43102819900307123X") == ("43102819900307", "00307123X", "431028199123X")
    assert id_piece_texts("431028900307123") == ("43102890030712", "00307123", "4310289")
    assert id_piece_texts("12345") == ("", "", "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789X0123456789aZ甲 ", max_size=30), min_size=1, max_size=40))
def test_any_cleaned_numbers_keep_their_partition(numbers):
    # a few repeats and same-length neighbours, so that equal pieces occur
    _check(numbers + numbers[:3] + [n[:-1] + "0" for n in numbers if n])


def test_a_typo_still_blocks_on_a_piece_and_records_without_a_number_do_not():
    own = valid_id("43102819900307123")
    typo = own[:10] + "4" + own[11:]          # a birth month digit mistyped: fails the check
    rows = [("刘备", "男", "1990-03-07", own), ("刘备", "男", "1990-03-07", typo),
            ("张飞", "男", "1991-05-01", ""), ("关羽", "男", "1992-06-02", ""), ("赵云", "男", "1993-07-03", "12")]
    std = registry(rows)
    assert all(std[c].dtype == np.int64 for c in ID_PIECES)
    for name, want in (("id_part_b", {(0, 1)}), ("id_part_a", set()), ("id_region_birth", set())):
        passes = tuple(p for p in MATCH_PASSES if p.name == name)
        c = candidate_pairs(std, None, passes)
        assert set(zip(c.left.tolist(), c.right.tolist())) == want, name


def test_a_skipped_id_block_is_named_by_the_masked_number_piece():
    """A block of one region + birth date part over the cap: the warning names the 14 characters
    (masked), as it did when the key was text."""
    head = "43102819900307"
    rows = [(f"刘{k}", "男", "", valid_id(f"{head}{k:03d}")) for k in range(30)]
    std = registry(rows)
    passes = tuple(p for p in MATCH_PASSES if p.name == "id_region_birth")
    passes = tuple(p.__class__(**{**p.__dict__, "only_unidentified": False, "window_by": ()}) for p in passes)
    c = candidate_pairs(std, None, passes, block_cap=100)
    warnings = [w for st_ in c.stats for w in st_.warnings]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"id_region_birth: block '{mask_ids_in_text(head)}' skipped: ")
    assert head not in warnings[0]


def test_an_incremental_dedupes_key_hash_of_a_piece_is_empty_where_there_is_none():
    codes = pd.Series(id_piece_codes(np.array([valid_id("43102819900307123"), "", "12"], dtype=object))[0])
    h = key_hashes(codes)
    assert h.dtype == np.uint64 and h[0] != 0 and h[1] == 0 and h[2] == 0
    text = key_hashes(pd.Series(["wang", "", "wang"], dtype=object))
    assert text[1] == 0 and text[0] == text[2] != 0
