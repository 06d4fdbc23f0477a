"""OpinionQA and GlobalOpinionQA loaders on small files written in the published layouts, and the
generic loader's `ordinal` flag."""

import json

import numpy as np
import pandas as pd
import pytest

from jaxunc.data import ItemValidationError, load_dataset
from jaxunc.data.survey import is_refusal
from jaxunc.stats import distribution as D
from jaxunc.stats.config import AnalysisConfig

# info.csv exactly as OpinionQA publishes it (leading index columns, Python literals as text)
INFO = [
    ("CARS1_W27", "{1.0: 'A lot', 2.0: 'A little', 3.0: 'Nothing at all', 99.0: 'Refused'}",
     "How much have you seen or heard about driverless vehicles?", "['A lot', 'A little', 'Nothing at all', 'Refused']",
     "[1.0, 2.0, 3.0]"),
    ("CARS2_W27", "{1.0: 'Mostly positive', 2.0: 'Mostly negative', 3.0: 'A mix of both', 99.0: 'Refused'}",
     "Has what you've seen or heard been mostly positive, mostly negative, or a mix of both?",
     "['Mostly positive', 'Mostly negative', 'A mix of both', 'Refused']", "[1.0, 2.0, 1.5]"),
    ("INDUSTRY_W27", "{1.0: 'Health care', 2.0: 'Retail', 3.0: 'Education', 99.0: 'Refused'}",
     "What industry or field do you currently work in?", "['Health care', 'Retail', 'Education', 'Refused']",
     "[1, 1, 1]"),
]
METADATA = ",key,options\n0,SEX,\"['Male', 'Female']\"\n13,POLPARTY,\"['Republican', 'Democrat', 'Independent', 'Other']\"\n"


def write_info(folder, rows):
    frame = pd.DataFrame(rows, columns=["key", "option_mapping", "question", "references", "option_ordinal"])
    frame.insert(0, "Unnamed: 0", range(len(frame)))
    frame.insert(0, "Unnamed: 0.1", range(len(frame)))
    frame.to_csv(folder / "info.csv")  # the unnamed leading index column as in the published files


def respondents(seed=0, n=60):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "QKEY": np.arange(n),
        "CARS1_W27": rng.choice(["A lot", "A little", "Nothing at all", "Refused"], n, p=[0.3, 0.4, 0.2, 0.1]),
        "CARS2_W27": rng.choice(["Mostly positive", "Mostly negative", "A mix of both", "Refused", ""], n),
        "INDUSTRY_W27": rng.choice(["1", "2", "3.0", "99"], n),  # answers stored as option_mapping codes
        "SEX": rng.choice(["Male", "Female", "Refused"], n, p=[0.45, 0.5, 0.05]),
        "POLPARTY": rng.choice(["Republican", "Democrat", "Independent"], n),
        "WEIGHT_W27": rng.uniform(0.2, 3.0, n).round(4),
    })
    return frame


@pytest.fixture
def opinionqa_dir(tmp_path):
    root = tmp_path / "human_resp"
    w27 = root / "American_Trends_Panel_W27"
    w27.mkdir(parents=True)
    write_info(w27, INFO)
    (w27 / "metadata.csv").write_text(METADATA)
    respondents().to_csv(w27 / "responses.csv", index=False)
    # a second survey with only the per-attribute JSON files of the GitHub repository
    w26 = root / "American_Trends_Panel_W26"
    w26.mkdir()
    write_info(w26, [("GUN1_W26", "{1.0: 'Yes', 2.0: 'No', 99.0: 'Refused'}", "Do you own a gun?",
                      "['Yes', 'No', 'Refused']", "[1.0, 2.0]")])
    (w26 / "SEX_data.json").write_text(json.dumps({"GUN1_W26": {
        "MC_options": ["Yes", "No", "Refused"], "question_text": "Do you own a gun?",
        "Female": {"No": 70.0, "Refused": 2.0, "Yes": 28.0}, "Male": {"No": 55.0, "Yes": 45.0}}}))
    (w26 / "POLPARTY_data.json").write_text(json.dumps({"GUN1_W26": {
        "MC_options": ["Yes", "No", "Refused"], "question_text": "Do you own a gun?",
        "Democrat": {"No": 40.0, "Yes": 10.0}, "Republican": {"No": 20.0, "Yes": 30.0}}}))
    return root


def weighted_shares(frame, key, options, mapping=None):
    """Independent reference: weighted answer totals by pandas groupby."""
    answers = frame[key].astype(str).map(lambda a: mapping.get(a, a) if mapping else a)
    tot = frame.assign(a=answers).groupby("a")["WEIGHT_W27"].sum()
    w = np.array([tot.get(o, 0.0) for o in options])
    return w / w.sum()


def test_opinionqa_weighted_overall_and_groups(opinionqa_dir):
    ds = load_dataset("opinionqa", path=str(opinionqa_dir))
    items = ds.items.set_index("item_id")
    assert list(items.index) == ["GUN1_W26", "CARS1_W27", "CARS2_W27", "INDUSTRY_W27"]  # surveys in name order
    resp = respondents()
    cars1 = items.loc["CARS1_W27"]
    assert cars1["Answers"] == ["A lot", "A little", "Nothing at all"] and cars1["refused_options"] == ["Refused"]
    full = weighted_shares(resp, "CARS1_W27", ["A lot", "A little", "Nothing at all", "Refused"])
    assert np.allclose(cars1["Answer_Ratios"], full[:3] / full[:3].sum(), atol=1e-12)
    assert cars1["refusal_share"] == pytest.approx(full[3], abs=1e-12)
    female = resp[resp["SEX"] == "Female"]
    ref = weighted_shares(female, "CARS1_W27", ["A lot", "A little", "Nothing at all", "Refused"])
    assert np.allclose(cars1["human_shares:SEX:Female"], ref[:3] / ref[:3].sum(), atol=1e-12)
    assert cars1["refusal_share:SEX:Female"] == pytest.approx(ref[3], abs=1e-12)
    # the 'Refused' respondents of SEX are not a group; the empty 'Other' party group has no shares
    assert "human_shares:SEX:Refused" not in items.columns
    assert np.ndim(cars1["human_shares:POLPARTY:Other"]) == 0 and pd.isna(cars1["human_shares:POLPARTY:Other"])
    # blank answers (not asked) are left out; ordinal flags and values from option_ordinal
    cars2 = items.loc["CARS2_W27"]
    asked = resp[resp["CARS2_W27"] != ""]
    ref2 = weighted_shares(asked, "CARS2_W27", ["Mostly positive", "Mostly negative", "A mix of both", "Refused"])
    assert np.allclose(cars2["Answer_Ratios"], ref2[:3] / ref2[:3].sum(), atol=1e-12)
    assert cars2["ordinal"] and cars2["ordinal_values"] == [1.0, 2.0, 1.5]
    ind = items.loc["INDUSTRY_W27"]  # nominal question: equal option_ordinal values; coded answers mapped
    assert not ind["ordinal"]
    codes = {"1": "Health care", "2": "Retail", "3.0": "Education", "99": "Refused"}
    ref3 = weighted_shares(resp, "INDUSTRY_W27", ["Health care", "Retail", "Education", "Refused"], codes)
    assert np.allclose(ind["Answer_Ratios"], ref3[:3] / ref3[:3].sum(), atol=1e-12)
    assert "weighted" in cars1["default_target"]
    # the JSON-only survey: groups from each file, default = pooled counts of the largest attribute
    gun = items.loc["GUN1_W26"]
    assert gun["human_shares:SEX:Female"] == pytest.approx([28 / 98, 70 / 98])
    assert gun["refusal_share:SEX:Female"] == pytest.approx(0.02)
    assert gun["human_shares:POLPARTY:Republican"] == pytest.approx([0.6, 0.4])
    assert gun["Answer_Ratios"] == pytest.approx([73 / 198, 125 / 198]) and "SEX" in gun["default_target"]


def test_opinionqa_bad_rows_name_file_and_key(opinionqa_dir):
    w27 = opinionqa_dir / "American_Trends_Panel_W27"
    resp = respondents()
    resp.loc[5, "CARS1_W27"] = "Maybe"
    resp.to_csv(w27 / "responses.csv", index=False)
    rows = INFO + [("EVIL_W27", "{}", "q?", "__import__('os').system('echo pwned')", "[1.0]")]
    write_info(w27, rows)
    with pytest.raises(ItemValidationError, match=r"info.csv: row 0 \(data row 0, key CARS1_W27\).*data row 5 "
                                                  r"field 'CARS1_W27': answer 'Maybe'"):
        load_dataset("opinionqa", path=str(w27))
    ds = load_dataset("opinionqa", path=str(w27), on_error="skip")
    assert list(ds.items["item_id"]) == ["CARS2_W27", "INDUSTRY_W27"]
    assert len(ds.skipped) == 2 and "unreadable row" in ds.summary()
    write_info(w27, [("EVIL_W27", "{}", "q?", "__import__('os').system('echo pwned')", "[1.0]")])
    with pytest.raises(ItemValidationError, match=r"field 'references' .*is not a Python list literal"):
        load_dataset("opinionqa", path=str(w27))  # parsed with ast.literal_eval: nothing is executed
    with pytest.raises(ValueError, match="give path="):
        load_dataset("opinionqa")
    with pytest.raises(ValueError, match="holds no info.csv"):
        load_dataset("opinionqa", path=str(opinionqa_dir.parent))


def test_shuffled_options_carry_their_targets_and_ordinal_values(opinionqa_dir):
    plain = load_dataset("opinionqa", path=str(opinionqa_dir)).items.set_index("item_id")
    shuf = load_dataset("opinionqa", path=str(opinionqa_dir), shuffle_options=True, seed=3).items.set_index("item_id")
    moved = 0
    for key in plain.index:
        a, b = plain.loc[key], shuf.loc[key]
        moved += a["Answers"] != b["Answers"]
        for col in [c for c in plain.columns if c.startswith("human_shares:")] + ["ordinal_values", "Answer_Ratios"]:
            if a[col] is None or np.ndim(a[col]) == 0:
                continue
            assert dict(zip(a["Answers"], a[col])) == pytest.approx(dict(zip(b["Answers"], b[col]))), (key, col)
    assert moved >= 2


GOQA = [
    ("Do you think the economy is good or bad?",
     "defaultdict(<class 'list'>, {'Belgium': [0.5, 0.3, 0.2], 'Britain (Old national sample)': [0.25, 0.65, 0.1]})",
     "['Good', 'Bad', 'DK/Refused']", "GAS"),
    ("How important is religion in your life?",
     "defaultdict(<class 'list'>, {'Belgium': [0.1, 0.2, 0.3, 0.35, 0.05], 'Japan': [0.05, 0.15, 0.4, 0.4, 0.0]})",
     "['Very important', 'Rather important', 'Not very important', 'Not at all important', \"Don't know/ No answer\"]",
     "WVS"),
]


def write_goqa(path, rows):
    pd.DataFrame(rows, columns=["question", "selections", "options", "source"]).to_csv(path, index=False)


def test_globalopinionqa_countries_are_targets(tmp_path):
    write_goqa(tmp_path / "global_opinions.csv", GOQA)
    ds = load_dataset("globalopinionqa", path=str(tmp_path))
    it = ds.items
    assert it["Answers"][0] == ["Good", "Bad"] and it["refused_options"][0] == ["DK/Refused"]
    assert it["human_shares:Belgium"][0] == pytest.approx([0.5 / 0.8, 0.3 / 0.8])
    assert it["refusal_share:Belgium"][0] == pytest.approx(0.2)
    brit = "human_shares:Britain (Old national sample)"
    assert it[brit][0] == pytest.approx([0.25 / 0.9, 0.65 / 0.9])
    assert np.ndim(it[brit][1]) == 0 and pd.isna(it[brit][1])  # Britain was not asked the second question
    assert it["Answer_Ratios"][0] == pytest.approx([(0.625 + 0.25 / 0.9) / 2, (0.375 + 0.65 / 0.9) / 2])
    assert it["refusal_share"][0] == pytest.approx(0.15) and "2 countries" in it["default_target"][0]
    assert it["human_shares:Japan"][1] == pytest.approx([0.05, 0.15, 0.4, 0.4])
    assert list(it["source"]) == ["GAS", "WVS"]


@pytest.mark.parametrize("selections, message", [
    ("defaultdict(<class 'list'>, __import__('os').system('echo pwned'))", "not a Python dict literal"),
    ("{'Belgium': [0.5, 0.5]}", "country 'Belgium' has 2 shares for 3 options"),
    ("{'Belgium': [0.5, 0.5, float('nan')]}", "not a Python dict literal"),
    ("{'Belgium': [0.0, 0.0, 1.0]}", "no country has answers"),
])
def test_globalopinionqa_bad_rows(tmp_path, selections, message):
    write_goqa(tmp_path / "g.csv", [GOQA[0], ("q2?", selections, "['Good', 'Bad', 'DK/Refused']", "GAS")])
    with pytest.raises(ItemValidationError, match=r"g.csv: row 1 \(data row 1\).*" + message.replace("(", r"\(")):
        load_dataset("globalopinionqa", path=str(tmp_path / "g.csv"))
    assert len(load_dataset("globalopinionqa", path=str(tmp_path / "g.csv"), on_error="skip").items) == 1


def test_refusal_options():
    for text in ("Refused", "DK/Refused", "Don't know", "Don\u2019t know/ No answer", "No answer", "(VOL) Don't know"):
        assert is_refusal(text), text
    for text in ("Refuse to accept", "Decline", "Not sure yet what to think", "Knowledge", "Dkk"):
        assert not is_refusal(text), text


def test_generic_ordinal_flag(tmp_path):
    f = tmp_path / "scale.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Agree?", "options": ["no", "somewhat", "yes"], "human_counts": [1, 2, 3], "ordinal": True},
        {"question": "Pet?", "options": ["cat", "dog"], "human_counts": [3, 1], "ordinal": "false"},
        {"question": "Pet2?", "options": ["cat", "dog"], "human_counts": [3, 1]}]) + "\n")
    items = load_dataset(str(f)).items
    assert items["ordinal"].tolist() == [True, False, False]
    f.write_text(json.dumps({"question": "q", "options": ["a", "b"], "ordinal": "maybe"}) + "\n")
    with pytest.raises(ItemValidationError, match="ordinal flag 'maybe' is not true/false"):
        load_dataset(str(f))
    g = tmp_path / "plain.jsonl"
    g.write_text(json.dumps({"question": "q", "options": ["a", "b"]}) + "\n")
    assert "ordinal" not in load_dataset(str(g)).items.columns  # tables without the flag are unchanged


def test_survey_table_feeds_the_distribution_stage(opinionqa_dir):
    items = load_dataset("opinionqa", path=str(opinionqa_dir)).items
    rng = np.random.default_rng(0)
    df = items.assign(model="M", model_type="base", model_size=1.0,
                      **{"mc_choice-pdf": [np.log(rng.dirichlet(np.ones(len(a)))) for a in items["Answers"]]})
    out = D.distribution_table(df, AnalysisConfig(bootstrap=20))[0]
    targets = set(out["target"])
    assert {"Answer_Ratios", "human_shares:SEX:Female", "human_shares:POLPARTY:Democrat"} <= targets
    rep = out[(out["metric"] == "representativeness") & (out["target"] == "Answer_Ratios")
              & (out["n_options"] == "all")]
    # GUN1, CARS1, CARS2 are ordinal, INDUSTRY is not; GUN1 (n = 2) has no other n = 2 item: no dataset_mean
    assert rep.set_index("predictor")["n"].to_dict() == {"model": 3, "uniform": 3, "dataset_mean": 2}
    other = out[(out["target"] == "human_shares:POLPARTY:Other")]  # a group nobody in the sample belongs to
    assert len(other) == 1 and other["n"].iloc[0] == 0 and "no item has shares" in other["note"].iloc[0]
