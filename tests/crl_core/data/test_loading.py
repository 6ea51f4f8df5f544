import json
import shutil

import pytest

from crl_core.config import ConfigError
from crl_core.data import (
    FILES_DIR,
    PROMPT_SETS,
    SPLITS,
    DataError,
    SplitConfig,
    load_prompt_splits,
    normalize_text,
    read_jsonl,
    split_hashes,
)


@pytest.fixture(scope="module")
def all_sets():
    return {name: load_prompt_splits(name) for name in PROMPT_SETS}


def test_every_vendored_set_loads_with_three_nonempty_splits(all_sets):
    import datasets

    for name, dd in all_sets.items():
        assert isinstance(dd, datasets.DatasetDict)
        assert set(dd) == set(SPLITS)
        assert all(len(dd[s]) > 0 for s in SPLITS), name
    assert sum(len(all_sets["harmful"][s]) for s in SPLITS) == 720
    assert len(all_sets["benign_qa"]["test"]) >= 50


def test_splits_are_disjoint_within_and_across_sets(all_sets):
    by_split = {s: set() for s in SPLITS}
    for dd in all_sets.values():
        texts = {s: set(dd[s]["norm_text"]) for s in SPLITS}
        assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"]
        assert not texts["val"] & texts["test"]
        for s in SPLITS:
            assert len(texts[s]) == len(dd[s])  # deduplicated
            by_split[s] |= texts[s]
    # a text in any set's test split is in no set's train split
    assert not by_split["test"] & by_split["train"]


def test_split_hashes_are_deterministic_and_depend_on_the_seed(all_sets):
    again = load_prompt_splits("harmful")
    assert split_hashes(again) == split_hashes(all_sets["harmful"])
    other = load_prompt_splits("harmful", SplitConfig(seed=1))
    assert split_hashes(other)["test"] != split_hashes(again)["test"]
    assert all(len(h) == 64 for h in split_hashes(again).values())


def test_benign_qa_rows_carry_answers(all_sets):
    row = all_sets["benign_qa"]["test"][0]
    assert row["answer"] and isinstance(row["aliases"], list)


def _copy_files(tmp_path):
    dst = tmp_path / "files"
    shutil.copytree(FILES_DIR, dst)
    return dst


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    files = _copy_files(tmp_path)
    path = files / "overrefusal_prompts.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = '{"id": "x", "prompt": "unterminated'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"overrefusal_prompts.jsonl:5: malformed JSON"):
        load_prompt_splits("overrefusal", files_dir=files)


@pytest.mark.parametrize("line,message", [
    ('["a", "b"]', "expected a JSON object"),
    ('{"id": "q1", "source": "s"}', "missing field 'prompt'"),
    ('{"id": "q1", "source": "s", "prompt": "   "}', "field 'prompt' must be a non-empty string"),
    ("", "blank line"),
])
def test_bad_rows_are_rejected(tmp_path, line, message):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "q0", "source": "s", "prompt": "hello"}\n' + line + "\n")
    with pytest.raises(DataError, match=f"set.jsonl:2: {message}"):
        read_jsonl(path, ("id", "source", "prompt"))


def test_duplicate_ids_and_missing_file(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    with pytest.raises(DataError, match="duplicate id 'a'"):
        read_jsonl(path)
    with pytest.raises(DataError, match="data file not found"):
        load_prompt_splits(str(tmp_path / "nope.jsonl"))
    files = _copy_files(tmp_path)
    (files / "benign_qa.jsonl").unlink()
    with pytest.raises(DataError, match="benign_qa.jsonl"):
        load_prompt_splits("benign_qa", files_dir=files)


def test_empty_split_is_an_error(tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"question {i}"}) + "\n" for i in range(3)))
    with pytest.raises(DataError, match="is empty"):
        load_prompt_splits(str(path), SplitConfig(test_fraction=0.0))


def test_user_jsonl_file_loads(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"question number {i}"}) + "\n"
                            for i in range(60)))
    dd = load_prompt_splits(str(path))
    assert sum(len(dd[s]) for s in SPLITS) == 60


def test_duplicates_after_normalisation_and_harmful_texts_are_dropped_from_benign_sets(tmp_path):
    files = _copy_files(tmp_path)
    harmful = read_jsonl(files / "advbench_harmful.jsonl")[0]["prompt"]
    path = files / "benign_anchors.jsonl"
    rows = read_jsonl(path)
    rows.append({**rows[0], "id": "dup-1", "prompt": "  " + rows[0]["prompt"].upper() + " "})
    rows.append({**rows[0], "id": "harm-1", "prompt": harmful})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dd = load_prompt_splits("benign_anchors", files_dir=files)
    ids = {i for s in SPLITS for i in dd[s]["id"]}
    assert "dup-1" not in ids and "harm-1" not in ids
    assert len(ids) == len(rows) - 2


def test_unknown_set_hub_offline_and_bad_split_config():
    with pytest.raises(DataError, match="did you mean 'harmful'"):
        load_prompt_splits("harmfull")
    with pytest.raises(DataError, match="offline"):
        load_prompt_splits("hub:wildguardmix")
    with pytest.raises(ConfigError, match="leave rows"):
        SplitConfig(val_fraction=0.5, test_fraction=0.5)


def test_normalize_text():
    assert normalize_text("  Hello,\tWORLD!! ") == "hello,\tworld".replace("\t", " ")
