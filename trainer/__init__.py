"""trainer: the bundled contrastive (CLIP) trainer that streams wit-pipeline shards (``wit train``).

``options`` (``TrainOptions``: every ``wit train`` flag, default and help; no torch),
``model_configs`` (the named model shapes; no torch), ``model`` (ViT + causal text
transformer), ``tokenizer`` (byte-level BPE learned from captions), ``loss`` (symmetric
contrastive loss over all-gathered features), ``data`` (resumable WebDataset streaming),
``train`` (``run_train``: ``setup``/``restore``, ``train_step``, ``log_interval``, ``save``
and the loop), ``schedule`` (warmup + cosine), ``distributed`` (process group and device),
``metrics`` (``metrics.jsonl``/TensorBoard), ``checkpoint``, ``zeroshot``, ``linear_probe``,
``synthetic`` (shape shards for tests and benches); ``cli`` registers ``wit train`` and
``wit eval``; ``demo`` is ``wit demo``'s train step; ``python -m trainer`` /
``torchrun -m trainer`` take the same flags as ``wit train``. Importing this package does
not import torch.
"""
