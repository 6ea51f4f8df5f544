"""Adapters carry no absolute path of the training machine and load offline elsewhere, with both plain peft
and AutoPeftModelForCausalLM (issue 11, part B)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import json, shutil, sys
from pathlib import Path
import torch
sys.path.insert(0, sys.argv[1])
work = Path(sys.argv[2])
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM
from crl_core.models.adapters import save_adapter
from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

checkout = work / "checkout-a"
base_dir = checkout / "tiny-base"
tok = build_tiny_tokenizer("chatml")
tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0).save_pretrained(base_dir)
tok.save_pretrained(base_dir)
ids = torch.tensor([tok("hello there")["input_ids"]])
results = {}
for label, name in (("folder", str(base_dir)), ("organism", "organism")):
    base = AutoModelForCausalLM.from_pretrained(name if label == "folder" else
                                                str(Path(sys.argv[1]) / "crl_core/organism/artifacts/v1"))
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    ids_ = torch.tensor([[1, 5, 9, 12]]) if label == "organism" else ids
    with torch.no_grad():
        want = peft(ids_).logits
    adapter = work / f"adapter-{label}"
    save_adapter(peft, adapter, name)
    results[label] = {"config": (adapter / "adapter_config.json").read_text(), "want": want, "ids": ids_}
shutil.rmtree(checkout)  # the training machine's base folder is gone: "another checkout"
out = {}
for label, r in results.items():
    adapter = work / f"adapter-{label}"
    auto = AutoPeftModelForCausalLM.from_pretrained(str(adapter))
    with torch.no_grad():
        got = auto(r["ids"]).logits
    out[label] = {"config": json.loads(r["config"]), "auto_equal": bool(torch.allclose(got, r["want"], atol=1e-6))}
    if label == "organism":
        base = AutoModelForCausalLM.from_pretrained(str(Path(sys.argv[1]) / "crl_core/organism/artifacts/v1"))
        plain = PeftModel.from_pretrained(base, str(adapter))
        with torch.no_grad():
            out[label]["plain_equal"] = bool(torch.allclose(plain(r["ids"]).logits, r["want"], atol=1e-6))
print(json.dumps(out))
"""


def test_adapters_name_their_base_portably_and_load_offline_after_the_base_folder_is_gone(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf-cache"), TRANSFORMERS_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for label, r in out.items():
        text = json.dumps(r["config"])
        assert str(tmp_path) not in text and str(ROOT) not in text and str(Path.home()) not in text, label
        assert r["config"]["base_model_name_or_path"].startswith("crl-sweep/"), label
        assert len(r["config"]["revision"]) == 40, label
        assert r["auto_equal"], f"AutoPeftModelForCausalLM loaded another model for the {label} adapter"
    assert out["organism"]["plain_equal"]
    assert out["organism"]["config"]["base_model_name_or_path"] == "crl-sweep/organism-v1"
