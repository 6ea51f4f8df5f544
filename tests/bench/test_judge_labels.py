"""bench/judge_labels.py ``draw`` on a made-up track folder (``--track``/``--out``: nothing under outputs/ is
read or written). ``agreement`` scores with SmolLM2 (``crl model prepare smollm2``) and rewrites the committed
labelled part: not run here."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"source", "attack", "id", "prompt", "prefix", "output"}


def _track(folder: Path) -> Path:
    for model in ("fakemodel-s0", "othermodel"):
        rows = [{"attack": attack, "id": f"fake-{attack}-{i}", "prompt": f"prompt {i}", "prefix": "",
                 "output": f"output {i}", "judge_label": "harmful"} for attack in ("direct", "prefill") for i in range(20)]
        (folder / model).mkdir(parents=True)
        (folder / model / "outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize("part", ["dev", "heldout"])
def test_draw_writes_unlabelled_rows_of_its_bucket_only(part, tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.judge_labels import main, part_of
    from crl_core.judges.outcome_agreement import blind_part

    track, out = _track(tmp_path / "track"), tmp_path / "drawn"
    assert main(["draw", "--part", part, "--per-cell", "3", "--models", "fakemodel", "--track", str(track),
                 "--out", str(out)]) == 0
    name = "dev" if part == "dev" else blind_part()
    rows = [json.loads(x) for x in (out / f"{name}.unlabelled.jsonl").read_text().splitlines()]
    assert rows and all(set(r) == KEYS for r in rows)  # the judge's label is never shown to the reader
    assert {r["source"] for r in rows} == {"fakemodel"}  # --models: the other model's folder is skipped
    for attack in ("direct", "prefill"):
        assert 0 < sum(r["attack"] == attack for r in rows) <= 3  # --per-cell
    assert all(part_of(r["source"], r["attack"], r["id"]) == part for r in rows)


def test_draw_without_a_track_folder_is_one_clear_error(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.judge_labels import main

    with pytest.raises(SystemExit, match="no model outputs in"):
        main(["draw", "--part", "dev", "--track", str(tmp_path / "missing"), "--out", str(tmp_path / "drawn")])
    assert not (tmp_path / "drawn").exists()
