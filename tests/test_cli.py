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


def test_crl_help_and_import_load_no_ray_and_crl_sweep_is_the_recipe():
    code = ("import sys, contextlib, io; from crl_core.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print('sweep' in out.getvalue(), 'ray' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "False"]
    proc = subprocess.run([sys.executable, "-m", "crl_core.cli", "sweep", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--resume" in proc.stdout and "--smoke" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "crl_core.cli", "sweep", "--smoke", "stepz=3"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "did you mean 'steps'" not in proc.stderr  # a sweep key, not a train key
    assert "unknown config key 'stepz'" in proc.stderr and "Traceback" not in proc.stderr


def test_lists_in_the_help_come_from_the_registries():
    from crl_core.registry import ATTACKS, EVAL_PRESETS

    proc = subprocess.run([sys.executable, "-m", "crl_core.cli", "eval", "--help"], capture_output=True, text=True)
    text = " ".join(proc.stdout.split()).replace("- ", "-")  # argparse may wrap a name at its hyphen
    assert all(name in text for name in ATTACKS.names()) and all(name in text for name in EVAL_PRESETS.names())
