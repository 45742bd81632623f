"""Words shown to reviewers for the model's fields and levels."""
from __future__ import annotations


def test_every_comparator_level_and_field_has_words_in_both_languages():
    """Reviewers read the evidence in words: no raw level code of the default comparators shows."""
    from matchers.registry import default_comparators
    from reconcile.i18n import t
    from reconcile.review.view import field_label, level_label

    for c in default_comparators():
        for lang in ("en", "zh"):
            assert field_label(c.field, lang) != c.field or lang == "en", (c.field, lang)
            for lv in c.levels:
                # catalogued (some English words equal the code: "different", "equal")
                assert t(f"review.level.{lv}", lang=lang) != f"review.level.{lv}", (c.field, lv, lang)
                assert level_label(lv, lang), (c.field, lv, lang)
