"""Loaders, the item table and its validation (jaxunc.data)."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from jaxunc.data import CORE_COLUMNS, ItemValidationError, RawItem, build_items, load_dataset
from jaxunc.data import coane, protoqa

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def reference_entropy(shares) -> float:
    """Independent reference: scipy.stats.entropy (renormalises) / ln n, float64."""
    shares = np.asarray(shares, dtype=np.float64)
    return 0.0 if len(shares) == 1 else float(entropy(shares) / math.log(len(shares)))


@pytest.fixture(scope="module")
def coane_items():
    return load_dataset("coane")


@pytest.fixture(scope="module")
def protoqa_raw():
    return pd.read_parquet(protoqa.SHIPPED)


@pytest.fixture(scope="module")
def protoqa_items():
    return load_dataset("protoqa")


# ---------------------------------------------------------------- shipped data


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the shared data files are not beside the repository ({SHARED})")
def test_shipped_files_are_the_shared_files():
    for mine, shared in ((coane.SHIPPED, "coane"), (protoqa.SHIPPED, "protoqa")):
        with open(mine, "rb") as a, open(f"{SHARED}/{shared}/{shared}_data.parquet", "rb") as b:
            assert a.read() == b.read()


def test_coane_table(coane_items):
    items, raw = coane_items.items, pd.read_parquet(coane.SHIPPED)
    assert len(items) == 421 and coane_items.skipped == []
    assert list(items.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    humans = [c for c in raw.columns if c.startswith(("FR_Human_", "MC_Human_"))]
    assert "MC_Human_Proc_Wrong" in humans and len(humans) == 17
    assert list(items.columns[len(CORE_COLUMNS):]) == humans  # kept, in the file's order
    for column in humans:
        pd.testing.assert_series_equal(items[column], raw[column], check_names=False)
    assert items["item_id"].tolist()[:2] == ["coane-0000", "coane-0001"]
    assert items["item_id"].is_unique
    assert (items["n_options"] == 4).all()
    assert all(p == [0, 1, 2, 3] for p in items["option_permutation"])  # not shuffled by default
    for _, item in items.iterrows():
        index = string.ascii_uppercase.index(item["Correct_Answer"])
        assert item["Answers"][index] == item["Correct_Answer_Text"]
        assert abs(sum(item["Answer_Ratios"]) - 1.0) < 1e-12


def test_coane_human_entropy_against_file_and_scipy(coane_items):
    items, raw = coane_items.items, pd.read_parquet(coane.SHIPPED)
    ours = items["human-ent"].to_numpy()
    expected = np.array([reference_entropy(r) for r in raw["Answer_Ratios"]])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    # The file's own human-ent already used renormalised shares: measured max |diff| = 1.1e-16.
    assert np.abs(ours - raw["human-ent"].to_numpy()).max() < 1e-12
    # Without renormalisation (shares sum to 0.994..1.005) the difference would be up to 1.6e-3.
    unnormalised = np.array([
        -(np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0)).sum() / math.log(4)
        for r in raw["Answer_Ratios"]
    ])
    assert 1e-3 < np.abs(unnormalised - ours).max() < 2e-3


def test_coane_plurality_and_ties(coane_items):
    items = coane_items.items
    ties = 0
    for _, item in items.iterrows():
        r = np.asarray(item["Answer_Ratios"])
        top = [j for j in range(len(r)) if math.isclose(r[j], r.max(), rel_tol=1e-12)]
        assert item["human_plurality"] == string.ascii_uppercase[top[0]]
        assert bool(item["human_plurality_tie"]) == (len(top) > 1)
        ties += len(top) > 1
    assert ties == int(items["human_plurality_tie"].sum()) and ties > 0


def test_protoqa_shuffled_by_default(protoqa_items, protoqa_raw):
    loaded, items = protoqa_items, protoqa_items.items
    assert len(items) == 8724 and loaded.permutation["shuffled"] and loaded.permutation["seed"] == 0
    assert items["Correct_Answer"].isna().all() and items["Correct_Answer_Text"].isna().all()
    assert (items["Response_Count"].to_numpy() == protoqa_raw["Response_Count"].to_numpy()).all()
    favourite_first = 0
    originals = zip(protoqa_raw["Answers"], protoqa_raw["Answer_Ratios"])
    for (_, item), (original, ratios) in zip(items.iterrows(), originals):
        perm = np.asarray(item["option_permutation"])
        assert sorted(perm) == list(range(len(original)))
        assert item["Answers"] == [original[p] for p in perm]
        shares = np.asarray(ratios) / np.sum(ratios)
        np.testing.assert_allclose(item["Answer_Ratios"], shares[perm], rtol=0, atol=1e-15)
        assert abs(item["human-ent"] - reference_entropy(ratios)) < 1e-12  # permutation-invariant
        if not item["human_plurality_tie"]:
            # the file's option 0 is the favourite; after shuffling it sits where perm == 0
            assert item["human_plurality"] == string.ascii_uppercase[int(np.flatnonzero(perm == 0)[0])]
        favourite_first += item["human_plurality"] == "A"
    chance = float(np.mean(1.0 / items["n_options"]))  # 0.20 here
    # binomial sd of the share is about 0.0043; 0.02 is a loose bound that still fails if unshuffled
    assert abs(favourite_first / len(items) - chance) < 0.02


def test_protoqa_seeded_and_limit(protoqa_items):
    again = load_dataset("protoqa", limit=300)
    assert again.n_rows == 300 and len(again.items) == 300
    perms = again.items["option_permutation"].tolist()
    assert perms == protoqa_items.items["option_permutation"][:300].tolist()
    other = load_dataset("protoqa", limit=300, seed=1)
    differ = np.mean([a != b for a, b in zip(other.items["option_permutation"], perms)])
    assert differ > 0.5
    plain = load_dataset("protoqa", limit=300, shuffle_options=False)
    assert plain.permutation["method"] == "identity"
    assert all(p == list(range(len(p))) for p in plain.items["option_permutation"])
    assert (plain.items["human_plurality"] == "A").all()  # the file's popularity order


def test_coane_can_be_shuffled_and_keeps_the_correct_text():
    items = load_dataset("coane", shuffle_options=True, seed=3, limit=60).items
    assert any(p != [0, 1, 2, 3] for p in items["option_permutation"])
    for _, item in items.iterrows():
        index = string.ascii_uppercase.index(item["Correct_Answer"])
        assert item["Answers"][index] == item["Correct_Answer_Text"]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 26).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 50), min_size=n, max_size=n).filter(lambda c: sum(c) > 0),
            st.integers(0, n - 1),
            st.integers(0, 2**31 - 1),
        )
    )
)
def test_permutation_moves_options_shares_and_label_together(case):
    counts, correct, seed = case
    n = len(counts)
    options = [f"option {j}" for j in range(n)]
    raws = [RawItem(row=7, question="q?", options=options, correct=correct, counts=counts)]
    items, _ = build_items(raws, dataset="t", source="mem", shuffle=True, seed=seed)
    item = items.iloc[0]
    perm = item["option_permutation"]
    assert item["Answers"] == [options[p] for p in perm]
    expected = np.asarray(counts, float)[perm] / sum(counts)
    np.testing.assert_allclose(item["Answer_Ratios"], expected, atol=1e-15)
    assert item["Answers"][string.ascii_uppercase.index(item["Correct_Answer"])] == options[correct]
    assert abs(item["human-ent"] - reference_entropy(counts)) < 1e-12


# ---------------------------------------------------------------- MMLU


def write_mmlu_csv(folder, subject, rows):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / f"{subject}_test.csv", header=False, index=False)


def test_mmlu_csv_layout(tmp_path):
    data = tmp_path / "data"
    write_mmlu_csv(data / "test", "astronomy", [
        ["What is the Sun?", "A star", "A planet", "A moon", "None", "A"],
        ["Which planet is red?", "Venus", "Mars", "Jupiter", "NA", "B"],
    ])
    write_mmlu_csv(data / "test", "anatomy", [["Bones in an adult, about?", "206", "106", "306", "56", "A"]])
    write_mmlu_csv(data / "dev", "anatomy_dev_not_read", [["dev?", "a", "b", "c", "d", "A"]])
    (data / "dev" / "anatomy_dev_not_read_test.csv").rename(data / "dev" / "anatomy_dev.csv")
    loaded = load_dataset("mmlu", path=str(data))
    items = loaded.items
    assert items["subject"].tolist() == ["anatomy", "astronomy", "astronomy"]  # sorted subjects
    assert items["Correct_Answer"].tolist() == ["A", "A", "B"]
    assert items["Answers"][1] == ["A star", "A planet", "A moon", "None"]  # "None" stays text
    assert items["Answers"][2][3] == "NA"
    assert items["Answers"][0] == ["206", "106", "306", "56"]
    assert items["Correct_Answer_Text"].tolist() == ["206", "A star", "Mars"]
    assert items["Answer_Ratios"].isna().all() and items["human-ent"].isna().all()
    assert items["item_id"].tolist() == ["mmlu-0000", "mmlu-0001", "mmlu-0002"]


def test_mmlu_csv_error_names_the_file_and_row(tmp_path):
    rows = [["q1?", "a", "b", "c", "d", "A"], ["q2?", "a", "b", "c", "d", "E"]]
    write_mmlu_csv(tmp_path / "test", "law", rows)
    message = r"law_test\.csv: row 1 \(row 1 of this file\): correct label 'E'"
    with pytest.raises(ItemValidationError, match=message):
        load_dataset("mmlu", path=str(tmp_path))
    loaded = load_dataset("mmlu", path=str(tmp_path), on_error="skip")
    assert len(loaded.items) == 1 and [row for row, _ in loaded.skipped] == [1]
    assert "1 x correct label invalid or outside the options" in loaded.summary()


def test_mmlu_parquet_layout(tmp_path):
    frame = pd.DataFrame({
        "question": ["2 + 2 = ?", "Capital of France?"],
        "subject": ["elementary_mathematics", "geography"],
        "choices": [["3", "4", "5", "22"], ["Paris", "Rome", "Oslo", "Bern"]],
        "answer": [1, 0],
    })
    (tmp_path / "all").mkdir()
    frame.to_parquet(tmp_path / "all" / "test-00000-of-00001.parquet")
    frame.iloc[:1].to_parquet(tmp_path / "all" / "dev-00000-of-00001.parquet")  # not read
    for path in (tmp_path / "all", tmp_path / "all" / "test-00000-of-00001.parquet"):
        items = load_dataset("mmlu", path=str(path)).items
        assert items["Correct_Answer"].tolist() == ["B", "A"]
        assert items["Correct_Answer_Text"].tolist() == ["4", "Paris"]
        assert items["subject"].tolist() == ["elementary_mathematics", "geography"]
    with pytest.raises(ValueError, match="give path="):
        load_dataset("mmlu")


# ---------------------------------------------------------------- generic files

ROWS = [
    {"question": "Best pet?", "options": ["cat", "dog", "fish"], "correct": "B",
     "human_counts": [3, 5, 2], "rt": 1.5},
    {"question": "Coin side?", "options": ["heads", "tails"], "correct": 0,
     "human_counts": [5, 5], "rt": 2.0},
    {"question": "No humans?", "options": ["x", "y"], "correct": None, "human_counts": None, "rt": None},
]


def check_generic(loaded, name):
    items = loaded.items
    assert loaded.name == name and items["dataset"].eq(name).all()
    assert items["Answers"].tolist() == [["cat", "dog", "fish"], ["heads", "tails"], ["x", "y"]]
    assert items["Correct_Answer"].tolist()[:2] == ["B", "A"] and items["Correct_Answer"][2] is None
    np.testing.assert_allclose(items["Answer_Ratios"][0], [0.3, 0.5, 0.2], atol=1e-15)
    np.testing.assert_allclose(items["human-ent"][:2], [reference_entropy([3, 5, 2]), 1.0], atol=1e-12)
    assert math.isnan(items["human-ent"][2]) and items["Answer_Ratios"][2] is None
    assert items["human_plurality"].tolist()[:2] == ["B", "A"]
    assert items["human_plurality_tie"].tolist()[:2] == [False, True]
    assert items["rt"].tolist()[:2] == [1.5, 2.0]  # extra human column kept


def test_generic_jsonl(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    check_generic(load_dataset(str(path)), "mine")
    check_generic(load_dataset("generic", path=str(path)), "mine")
    array = tmp_path / "arr.json"  # a .json file may also hold one array of objects
    array.write_text(json.dumps(ROWS))
    check_generic(load_dataset(str(array)), "arr")


def test_generic_csv_json_lists_and_option_columns(tmp_path):
    frame = pd.DataFrame(ROWS)
    as_json = frame.assign(
        options=frame["options"].map(json.dumps),
        human_counts=frame["human_counts"].map(lambda c: json.dumps(c) if c else ""),
    )
    as_json.to_csv(tmp_path / "lists.csv", index=False)
    check_generic(load_dataset(str(tmp_path / "lists.csv")), "lists")
    wide = frame.drop(columns=["options"])
    for j, letter in enumerate("ABC"):
        wide[f"option_{letter}"] = [o[j] if j < len(o) else None for o in frame["options"]]
    wide["human_counts"] = as_json["human_counts"]
    wide.to_csv(tmp_path / "wide.csv", index=False)
    check_generic(load_dataset(str(tmp_path / "wide.csv")), "wide")


def test_generic_parquet_with_shares_and_ids(tmp_path):
    frame = pd.DataFrame({
        "item_id": ["a1", "a2"],
        "Question": ["One?", "Two?"],
        "Answers": [["p", "q"], ["r", "s", "t"]],
        "Answer_Ratios": [[0.25, 0.75], [0.2, 0.2, 0.6]],
        "Correct_Answer": ["B", None],
        "human-ent": [9.0, 9.0],  # recomputed, not read
    })
    frame.to_parquet(tmp_path / "p.parquet")
    items = load_dataset(str(tmp_path / "p.parquet")).items
    assert items["item_id"].tolist() == ["a1", "a2"]
    expected = [reference_entropy([1, 3]), reference_entropy([1, 1, 3])]
    np.testing.assert_allclose(items["human-ent"], expected, atol=1e-12)
    assert items["Correct_Answer"].tolist() == ["B", None]


N_OPTIONS = "number of options not in 2..26"
BAD_ROWS = [
    ({"question": "", "options": ["a", "b"]}, "question is empty", "question empty"),
    ({"question": None, "options": ["a", "b"]}, "question is missing", "question missing"),
    ({"options": ["a", "b"]}, "question is missing", "question missing"),
    ({"question": "q", "options": ["a"]}, "1 options; expected between 2 and 26", N_OPTIONS),
    ({"question": "q", "options": [str(i) for i in range(27)]}, "27 options", N_OPTIONS),
    ({"question": "q", "options": ["a", "b"], "human_counts": [5, 3, 2]}, "3 entries but there are 2 options",
     "human counts/shares length differs from the options"),
    ({"question": "q", "options": ["a", "b"], "human_counts": [3, -1]}, "negative",
     "human counts/shares negative"),
    ({"question": "q", "options": ["a", "b"], "human_counts": [3, float("nan")]}, "NaN",
     "human counts/shares NaN or infinite"),
    ({"question": "q", "options": ["a", "b"], "correct": "C"}, "correct label 'C' is outside the 2 options",
     "correct label invalid or outside the options"),
    ({"question": "q", "options": ["a", "b"], "correct": 2}, "correct label 2 is outside",
     "correct label invalid or outside the options"),
]


@pytest.mark.parametrize("bad, message, kind", BAD_ROWS)
def test_validation_errors_name_file_and_row(tmp_path, bad, message, kind):
    good = {"question": "fine?", "options": ["a", "b"], "correct": "A", "human_counts": [1, 2]}
    path = tmp_path / "items.jsonl"
    # json.dumps writes NaN for float("nan"), which json.loads reads back as NaN
    path.write_text("\n".join(json.dumps(r) for r in (good, bad, good)) + "\n")
    with pytest.raises(ItemValidationError, match=rf"items\.jsonl: row 1 \(line 2\): .*{message}"):
        load_dataset(str(path))
    loaded = load_dataset(str(path), on_error="skip")
    assert len(loaded.items) == 2 and loaded.items["item_id"].tolist() == ["items-0000", "items-0002"]
    assert loaded.skipped == [(1, kind)]
    assert f"skipped 1: 1 x {kind}" in loaded.summary()


def test_unreadable_jsonl_line_and_file_level_errors(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "ok?", "options": ["a", "b"]}\n{not json\n')
    message = r"broken\.jsonl: row 1 \(line 2\): line 2 is not a JSON object"
    with pytest.raises(ItemValidationError, match=message):
        load_dataset(str(path))
    assert load_dataset(str(path), on_error="skip").skipped == [(1, "unreadable row")]
    both = tmp_path / "both.jsonl"
    both.write_text(json.dumps({"question": "q", "Question": "q", "options": ["a", "b"]}) + "\n")
    with pytest.raises(ValueError, match="both give the question"):
        load_dataset(str(both))
    none = tmp_path / "none.jsonl"
    none.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="give the options"):
        load_dataset(str(none))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="on_error must be one of"):
        load_dataset("coane", on_error="ignore", limit=2)
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        load_dataset("coane", limit=0)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset("/no/such/file.jsonl")


def test_a_field_longer_than_the_limit_is_refused_before_tokenization(tmp_path):
    path = tmp_path / "huge.jsonl"
    huge = "x" * (50 * 1024 * 1024)  # a 50 MB question line (ran a tokenizer out of memory before)
    with open(path, "w") as f:
        f.write(json.dumps({"question": "fine?", "options": ["a", "b"]}) + "\n")
        f.write(json.dumps({"question": huge, "options": ["a", "b"]}) + "\n")
        f.write(json.dumps({"question": "fine?", "options": ["a", "b" * 60_001]}) + "\n")
    del huge
    with pytest.raises(ItemValidationError, match=r"huge\.jsonl: row 1 \(line 2\): the question has 52,428,800 "
                                                  r"characters; the limit is 50,000 \(data.max_field_chars\)"):
        load_dataset(str(path))
    loaded = load_dataset(str(path), on_error="skip")
    assert loaded.items["item_id"].tolist() == ["huge-0000"]
    assert loaded.skipped == [(1, "text longer than data.max_field_chars"), (2, "text longer than data.max_field_chars")]
    assert len(load_dataset(str(path), on_error="skip", max_field_chars=70_000).items) == 2


def test_bytes_that_are_not_utf8_make_only_their_row_unreadable(tmp_path):
    csv = tmp_path / "latin1.csv"
    csv.write_bytes(b'question,options\n"fine?","[""a"", ""b""]"\n"caf\xe9?","[""a"", ""b""]"\n"ok?","[""c"", ""d""]"\n')
    with pytest.raises(ItemValidationError, match=r"latin1\.csv: row 1: column 'question' holds bytes that are not UTF-8"):
        load_dataset(str(csv))
    assert load_dataset(str(csv), on_error="skip").items["Question"].tolist() == ["fine?", "ok?"]
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"question": "fine?", "options": ["a", "b"]}\n{"question": "caf\xe9?", "options": ["a", "b"]}\n')
    with pytest.raises(ItemValidationError, match=r"row 1 \(line 2\): line 2 is not valid UTF-8 \(byte 0xe9 at byte 18\)"):
        load_dataset(str(jsonl))
    assert len(load_dataset(str(jsonl), on_error="skip").items) == 1


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "the file is empty"),
    ("header_only.csv", b"question,options\n", "no rows"),
    ("empty.jsonl", b"\n\n", "no rows"),
    ("garbage.parquet", b"PAR1 not really", "not a readable parquet file"),
    ("all_bad.jsonl", b'{"question": "q"}\n{"question": "q", "options": ["a"]}\n', r"\(1 x options invalid; 1 x"),
    ("all_invalid.jsonl", b'{"question": "", "options": ["a", "b"]}\n{"question": "q", "options": ["a"]}\n',
     r"none of the 2 rows is a valid item \(1 x question empty; 1 x number of options not in 2..26\)"),
])
def test_files_without_a_valid_item_give_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(str(path), on_error="skip")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
