"""The training loop as DDP ranks: two gloo processes on CPU stay in sync."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out_dir: str, cut: bool = False) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        from crl_core.config import from_dict
        from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama
        from crl_core.training import DefenseTrainer, TrainConfig

        tok = build_tiny_tokenizer("chatml")
        model = tiny_llama(len(tok), hidden_size=32, num_layers=5 if cut else 3, seed=0)
        cfg = from_dict(TrainConfig, {
            "method": "crl", "steps": 3, "model": {"name": "tiny"}, "harmful_layers": {"indices": [1, 2]},
            "benign_layers": "target" if cut else "all",
            "data": {"preset": "smollm2", "batch_benign": 2, "batch_harmful": 2, "batch_retain": 2,
                     "max_length": 40, "harmful_limit": 20},
            "eval": {"enabled": False}, "output_dir": out_dir})
        tr = DefenseTrainer(cfg, model=model, tokenizer=tok, log=lambda m: None, rank=rank, world_size=world)
        hist = tr.fit()
        lora = torch.cat([p.detach().flatten() for n, p in sorted(tr.model.named_parameters()) if "lora" in n])
        torch.save({"lora": lora, "loss": [h["loss"] for h in hist], "exit_blocks": tr.exit_blocks},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_two_ddp_ranks_keep_identical_weights_on_different_data(tmp_path):
    port = _free_port()
    mp.start_processes(_rank_main, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["lora"], r1["lora"])           # gradients were all-reduced
    assert r0["loss"] != r1["loss"]                       # each rank drew its own batches
    assert r0["lora"].abs().sum() > 0                     # and training moved the adapter


@pytest.mark.timeout(180)
def test_ddp_ranks_stay_in_sync_with_an_early_exit_reference_pass(tmp_path):
    """Under DDP the current pass goes whole through the wrapper (one forward per backward); the frozen
    reference pass of the benign and harmful rows stops at the deepest selected state."""
    port = _free_port()
    mp.start_processes(_rank_main, args=(2, port, str(tmp_path), True), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["exit_blocks"] == r1["exit_blocks"] == 3
    assert torch.equal(r0["lora"], r1["lora"]) and r0["lora"].abs().sum() > 0
