"""Early exit (docs/method.md, "Early exit"): the benign and harmful rows' passes stop after the deepest hidden
state the method reads; the retain rows run the whole model. Exact: the same losses as every row running every
block, in float64 over 20 steps, for CRL, CRL + mining, circuit breakers and RepBend."""

import pytest
import torch

from crl_core.config import from_dict
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
from crl_core.training import DefenseTrainer, TrainConfig

DEPTH = 5
MINING = {"enabled": True, "reinit_every": 5, "init_steps": 3, "gate_loss": 100.0, "probability": 1.0,
          "block_min": 0, "block_max": 2}


def _trainer(method: str, early_exit: bool, steps: int = 20, log=None, **extra) -> DefenseTrainer:
    tok = build_tiny_tokenizer("chatml")
    model = tiny_llama(len(tok), hidden_size=32, num_layers=DEPTH, seed=0).double()
    data = {"method": method, "steps": steps, "early_exit": early_exit, "model": {"name": "tiny"},
            "harmful_layers": {"indices": [1, 2]}, "benign_layers": "target", "lora": {"init_b_std": 1e-2},
            "data": {"preset": "smollm2", "batch_benign": 4, "batch_harmful": 4, "batch_retain": 4,
                     "max_length": 48, "harmful_limit": 40},
            "eval": {"enabled": False}, "log_every": 100, "output_dir": "/tmp/crl-test-unused", **extra}
    return DefenseTrainer(from_dict(TrainConfig, data), model=model, tokenizer=tok, log=log or (lambda m: None))


def _losses(method: str, early_exit: bool, **extra) -> list[float]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return [h["loss"] for h in _trainer(method, early_exit, **extra).fit()]
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("method,extra", [("crl", {}), ("crl", {"mining": MINING}), ("circuit_breaker", {}),
                                          ("repbend", {}), ("crl", {"gradient_checkpointing": True})],
                         ids=["crl", "crl_mining", "circuit_breaker", "repbend", "crl_checkpointing"])
def test_early_exit_gives_the_losses_of_the_whole_pass(method, extra):
    cut, whole = _losses(method, True, **extra), _losses(method, False, **extra)
    assert len(cut) == 20 and len(set(round(x, 6) for x in cut)) > 5  # a trajectory that moves
    assert cut == pytest.approx(whole, rel=1e-6, abs=1e-9)


def test_the_cut_pass_runs_fewer_blocks_for_the_benign_and_harmful_rows():
    tr = _trainer("crl", True, steps=1)
    assert tr.exit_blocks == 3  # deepest selected state 2 -> blocks 0..2; the model has 5
    layers = tr.model.get_base_model().get_decoder().layers
    rows_seen = [0] * DEPTH
    hooks = [layer.register_forward_hook(lambda m, i, o, k=k: rows_seen.__setitem__(k, rows_seen[k] + i[0].shape[0]))
             for k, layer in enumerate(layers)]
    try:
        tr.train_step()
    finally:
        for h in hooks:
            h.remove()
    # reference + current pass: 12 rows through blocks 0..2, only the 4 retain rows through 3..4
    assert rows_seen == [24, 24, 24, 8, 8]
    assert _trainer("crl", False, steps=1).exit_blocks is None
    assert _trainer("sft", True, steps=1).exit_blocks is None  # a method that does not declare it


def test_a_model_without_a_layer_list_runs_whole_with_one_log_line():
    lines = []
    tr = _trainer("crl", True, steps=1, log=lines.append)
    assert tr.exit_blocks == 3 and not lines
    decoder = tr.model.get_base_model().get_decoder()
    blocks = decoder._modules.pop("layers")
    decoder.__dict__["layers"] = list(blocks)  # a plain list: nothing the trainer can cut safely
    try:
        assert tr._exit_blocks(DEPTH) is None
    finally:
        del decoder.__dict__["layers"]
        decoder.layers = blocks
    assert lines == ["[train] early exit: LlamaModel has no layer list of its 5 blocks to cut; "
                     "every row runs the whole model"]
