"""trainer: the bundled contrastive (CLIP) trainer that streams wit-pipeline shards.

``model`` (ViT + causal text transformer), ``tokenizer`` (byte-level BPE learned
from captions), ``loss`` (symmetric contrastive loss over all-gathered
features), ``data`` (resumable WebDataset streaming), ``train`` (the loop),
``checkpoint``, ``zeroshot``, ``linear_probe``; ``cli`` registers ``wit train``
and ``wit eval``; ``python -m trainer`` / ``torchrun -m trainer`` take the same
flags as ``wit train``. Importing this package does not import torch.
"""
