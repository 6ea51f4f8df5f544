"""bench/real_model_track.py needs SmolLM2 (``crl model prepare smollm2``; it builds the refusal base itself),
minutes per model: only its argument checks run here (they come before anything is built or written)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args, message", [(["--only", "crl,nope"], "--only: unknown model(s) nope"),
                                           (["--limit", "0"], "--limit must be at least 1"),
                                           (["--jobs", "999"], "--jobs must be between 1 and")])
def test_bad_arguments_are_refused_before_anything_runs(args, message, capsys):
    sys.path.insert(0, str(ROOT))
    from bench.real_model_track import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
