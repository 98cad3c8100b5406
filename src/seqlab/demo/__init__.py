"""The Gradio demo: LSTM vs Transformers side by side, read from an experiment's output folder.

Install with ``pip install -e ".[demo]"``; start with ``python scripts/demo.py --run_dir runs/transfer_gap_tiny``.
``runfolder``, ``inference``, ``plots`` and ``app`` import nothing from the rest of seqlab: ``space.py`` copies
them into a Hugging Face Space as the package ``seqlab_demo``, where the models load with their own code
(``trust_remote_code``). Importing seqlab itself never imports gradio.
"""
