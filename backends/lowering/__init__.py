"""Lowering rules, one module per op family (mirroring ir/ops/<family>.py): each rule turns
one `train` op into kernel-IR steps; passes/lower_to_kernels.py finds them by op class."""
