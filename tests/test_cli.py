import subprocess
import sys

from crl_core.cli import main


def test_crl_help_lists_subcommands(capsys):
    proc = subprocess.run([sys.executable, "-m", "crl_core.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for sub in ("model", "data", "organism", "eval"):
        assert sub in proc.stdout


def test_data_info_prints_sets_and_hashes(capsys):
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    for name in ("harmful", "benign_qa", "overrefusal", "refusal_pairs"):
        assert name in out


def test_bad_model_name_is_one_clear_error(capsys):
    assert main(["model", "prepare", "gpt5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crl: error:") and "smollm2" in err and "Traceback" not in err


def test_bad_inputs_fail_before_any_compute(capsys):
    cases = [
        (["organism", "build", "model.hiden_size=64"], "did you mean 'hidden_size'"),
        (["train", "--preset", "organism-crll"], "did you mean 'organism-crl'"),
        (["train", "--preset", "organism-crl", "stepz=3"], "did you mean 'steps'"),
        (["eval", "--attacks", "direct,prefil"], "did you mean 'prefill'"),
        (["eval", "--out", "report.txt"], "must name a .json file"),
        (["eval", "--preset", "smollm2", "--attacks", "embedding_forcing_control"], "forcing control needs"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
