"""The sweep's console filters: what they drop, and that they drop nothing else."""

import logging

from sweeps.engine.console import ProgressLog, drop_torn_snapshot_copy, trial_log


def _record(msg, exc=None):
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord("ray.tune.execution.experiment_state", logging.ERROR, __file__, 1, msg, (), exc_info)


def test_the_torn_snapshot_copy_traceback_is_dropped_and_other_sync_errors_kept():
    torn = FileNotFoundError("[Errno 2] No such file: '/x/.1b2c-tmp-searcher-state-2026.pkl'")
    assert not drop_torn_snapshot_copy(_record("Saving experiment state to storage at '/x' failed", torn))
    assert drop_torn_snapshot_copy(_record("Saving experiment state to storage at '/x' failed",
                                           PermissionError("denied")))
    assert drop_torn_snapshot_copy(_record("something else", torn))


def test_trial_log_drops_per_step_lines_only(capsys):
    trial_log("step 3/6 triplet/benign=0.05")
    trial_log("resumed from /x at step 4")
    assert capsys.readouterr().out == "resumed from /x at step 4\n"


def test_progress_lines_name_the_trial_and_the_event(capsys, tmp_path):
    class Trial:
        trial_id, config = "abc", {"x": 0.123456}
        last_result = {"step": 2}
        error_file = str(tmp_path / "error.txt")

    (tmp_path / "error.txt").write_text("Traceback (most recent call last):\n  ...\nValueError: boom\n")
    log = ProgressLog(lambda t: t.trial_id, max_step=4)
    log.on_trial_start(0, [], Trial())
    log.on_trial_result(0, [], Trial(), {"step": 2, "score": 0.5, "asr": 0.25})
    log.on_trial_complete(0, [], Trial())
    log.on_trial_error(0, [], Trial())
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "trial abc started: x=0.1235", "trial abc step 2: score=0.5 asr=0.25",
        "trial abc stopped at step 2 (ASHA)", f"trial abc failed: ValueError: boom (traceback: {Trial.error_file})"]


def test_a_trial_process_drops_only_the_shutdown_exit_it_cannot_catch(capsys):
    import sys

    from sweeps.engine.console import quiet_trial_process

    class RaisesOnDelete:  # an exception in __del__ goes to sys.unraisablehook, as Ray's SIGTERM exit does
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc

    before = sys.unraisablehook
    try:
        quiet_trial_process()
        RaisesOnDelete(SystemExit(1))
        assert "SystemExit" not in capsys.readouterr().err
        RaisesOnDelete(ValueError("a real one"))
        assert "ValueError: a real one" in capsys.readouterr().err
    finally:
        sys.unraisablehook = before
