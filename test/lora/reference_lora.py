#!/usr/bin/env python3
"""Independent numpy reference for Alloy's LoRA tests (docs/lora.md). Only numpy is needed:
safetensors files are parsed here directly (8-byte length, JSON header, little-endian data).

  reference_lora.py apply MODEL_DIR ADAPTER_DIR OUT.safetensors
      Every tensor of MODEL_DIR/model.safetensors with the PEFT adapter merged as PEFT's
      merge_and_unload defines it, computed in float64 and written as F32:
      W += scale * (B @ A), transposed for fan_in_fan_out and lora_embedding_A/B; scale is
      lora_alpha / r (or / sqrt(r) with use_rslora), with rank_pattern / alpha_pattern keys
      matched as PEFT matches them; base_model.model.X tensors that are not LoRA factors
      (modules_to_save) replace X.

  reference_lora.py svd-error BASE_DIR FT_DIR RANK OUT.json
      For each 2-D weight, the relative Frobenius error of the best rank-RANK approximation of
      W_ft - W_base: sqrt(sum of squared tail singular values) / ||dW||_F (numpy.linalg.svd).
"""
import json
import re
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: {name}: unsupported dtype {dtype}")
        out[name] = arr.reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header = {}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def pattern_value(pattern, module, default):
    # PEFT: an exact key first, else the first key that matches the name or a dotted suffix.
    if module in pattern:
        return pattern[module]
    for key in pattern:
        if re.match(rf"(.*\.)?({key})$", module):
            return pattern[key]
    return default


def apply(model_dir, adapter_dir, out_path):
    model = read_safetensors(f"{model_dir}/model.safetensors")
    with open(f"{adapter_dir}/adapter_config.json") as f:
        config = json.load(f)
    adapter = read_safetensors(f"{adapter_dir}/adapter_model.safetensors")
    prefix = "base_model.model."
    modules = {}
    replace = {}
    for key, value in adapter.items():
        name = key[len(prefix) :]
        m = re.match(r"(.+)\.(lora_A|lora_B)\.weight$", name) or re.match(r"(.+)\.(lora_embedding_A|lora_embedding_B)$", name)
        if m:
            modules.setdefault(m.group(1), {})[m.group(2)] = value
        else:
            replace[name] = value
    for module, pair in modules.items():
        embedding = "lora_embedding_A" in pair
        a = pair["lora_embedding_A" if embedding else "lora_A"]
        b = pair["lora_embedding_B" if embedding else "lora_B"]
        r = pattern_value(config.get("rank_pattern") or {}, module, config["r"])
        alpha = pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
        scale = alpha / np.sqrt(r) if config.get("use_rslora") else alpha / r
        assert a.shape[0] == r, (module, a.shape, r)
        delta = b @ a
        if embedding or config.get("fan_in_fan_out"):
            delta = delta.T
        name = f"{module}.weight"
        model[name] = model[name] + scale * delta
    for name, value in replace.items():
        assert model[name].shape == value.shape, name
        model[name] = value
    write_safetensors(out_path, model)


def svd_error(base_dir, ft_dir, rank, out_path):
    base = read_safetensors(f"{base_dir}/model.safetensors")
    ft = read_safetensors(f"{ft_dir}/model.safetensors")
    errors = {}
    for name, w in ft.items():
        if w.ndim != 2 or name not in base:
            continue
        dw = w - base[name]
        norm = np.linalg.norm(dw)
        if norm == 0:
            continue
        s = np.linalg.svd(dw, compute_uv=False)
        errors[name] = float(np.sqrt(np.sum(s[rank:] ** 2)) / norm)
    with open(out_path, "w") as f:
        json.dump(errors, f)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "apply":
        apply(*sys.argv[2:5])
    elif cmd == "svd-error":
        svd_error(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        raise SystemExit(f"unknown command {cmd}")
