#!/usr/bin/env python3
"""Checks Alloy's LoRA files against PEFT itself (local only: needs torch, transformers, peft).

  peft_check.py merge MODEL_DIR ADAPTER_DIR ALLOY_OUT_DIR
      Loads the model, applies the adapter with PEFT, merge_and_unload(), and prints as JSON the
      largest |PEFT − Alloy| over every tensor of Alloy's merged output, and PEFT's load report.

  peft_check.py roundtrip BASE_DIR ADAPTER_DIR FT_DIR
      Loads an adapter written by `alloy extract-lora` into the base with PEFT (reporting any
      missing or unexpected keys), merges it, and prints the largest |merged − fine-tune|.
"""
import json
import sys
import warnings

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def merged(model_dir, adapter_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(model, adapter_dir)
    load_warnings = [str(w.message) for w in caught if "key" in str(w.message).lower()]
    return peft_model.merge_and_unload().state_dict(), load_warnings


def max_diff(state, tensors):
    worst = 0.0
    compared = 0
    for name, value in tensors.items():
        if name not in state:
            continue
        compared += 1
        worst = max(worst, (state[name].float() - value.float()).abs().max().item())
    return worst, compared


def main():
    cmd = sys.argv[1]
    if cmd == "merge":
        state, load_warnings = merged(sys.argv[2], sys.argv[3])
        tensors = load_file(f"{sys.argv[4]}/model.safetensors")
    elif cmd == "roundtrip":
        state, load_warnings = merged(sys.argv[2], sys.argv[3])
        tensors = load_file(f"{sys.argv[4]}/model.safetensors")
    else:
        raise SystemExit(f"unknown command {cmd}")
    worst, compared = max_diff(state, tensors)
    print(json.dumps({"maxAbsDiff": worst, "compared": compared, "loadWarnings": load_warnings}))


if __name__ == "__main__":
    main()
