"""`pockengine demo`: the end-to-end demonstrations (cli.py is the driver entry).

    vision.py   transfer learning on built-in image data: import a pretrained PyTorch model,
                search a sparse scheme under a memory budget, compile full and sparse training
                steps to C, fine-tune them and PyTorch eager, one table and figures
    llm.py      `--llm`: sparse fine-tuning of a tiny HF Llama on text that ships with Python
    corpus.py   that text; eager.py the PyTorch reference fine-tuning; compiled.py the compiled
                trainers; report.py the table and figures; steps.py progress bars and result lines
"""
