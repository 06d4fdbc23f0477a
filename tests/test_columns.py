"""Column names and kinds follow docs/measures.md (sections 1, 5 and 6)."""

from jaxunc import columns


def test_mc_columns_cover_section_1():
    cols = columns.mc_columns()
    assert "mc_top-k-ent-100" in cols and "mc_top-p-len-0.5" in cols and "mc_top-p-ent-0.95" in cols
    assert len(cols) == len(set(cols)) == 2 + 5 + 4 + 4 + 1 + 6


def test_kinds_and_orientation():
    assert columns.kind("mc_top-1-prob") == columns.CONFIDENCE
    assert columns.orientation("mc_choice-prob") == -1
    assert columns.orientation("mc_choice-ent") == 1
    assert columns.orientation("fr_ppl") == 1
    assert columns.kind("fr_tok1_top-1-prob") == columns.CONFIDENCE


def test_confidence_maps_follow_section_6():
    assert columns.confidence_map("mc_choice-prob-renorm") == "identity"
    assert columns.confidence_map("mc_choice-mass") == "exp"
    assert columns.confidence_map("mc_top-k-ent-5") == "one_minus"
    assert columns.confidence_map("fr_ppl") == "inverse"
    assert columns.confidence_map("mc_var-ent") is None
    assert columns.confidence_map("mc_top-p-len-0.9") is None
    assert columns.confidence_map("mc_top-p-ent-0.9") == "one_minus"


def test_ordered_puts_measures_in_canonical_order_and_model_last():
    cols = ["model", "mc_choice-ent", "item_id", "mc_total-ent", "cloze_pred", "model_size", "Question"]
    assert columns.ordered(cols) == ["item_id", "Question", "mc_total-ent", "mc_choice-ent", "cloze_pred",
                                     "model", "model_size"]
    assert columns.ordered(["model_pair", "model", "Question"]) == ["Question", "model", "model_pair"]
