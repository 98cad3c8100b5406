"""The Gradio app: five tabs over one experiment output folder (see runfolder.py for its layout).

Every handler returns a status line first: empty text, too long text or a missing model give a message there
(naming what to run), never a traceback. Each tab's button is also an API endpoint (``api_name``) that
``gradio_client`` can call.
"""

from pathlib import Path

import gradio as gr
import pandas as pd

from . import inference, plots
from .runfolder import DemoMessage, RunFolder

EXAMPLE = "The film was a quiet , moving portrait of a family , and the acting was superb ."


def _message(error: DemoMessage) -> str:
    return f"⚠️ {error}"


def build_app(run_dir: str | Path) -> gr.Blocks:
    run = RunFolder.read(run_dir)
    budgets = run.budgets()
    with gr.Blocks(title="seqlab: LSTM vs Transformers") as demo:
        gr.Markdown(
            "# seqlab: LSTM vs Transformers, side by side\n"
            f"Models from `{run.root}`: "
            + (", ".join(m.title for m in run.language_models) or "no language models")
            + f"; {len(run.classifiers)} kept classifiers."
        )
        # each tab's components are made inside its gr.Tab context, in page order
        _classify_tab(run, budgets)
        _generate_tab(run)
        _fill_mask_tab(run)
        _inside_tab(run)
        _results_tab(run, demo)
    return demo


def _classify_tab(run: RunFolder, budgets: list[str]) -> None:
    def classify(text, budget):
        try:
            columns, rows = inference.classify(run, text, budget)
        except DemoMessage as error:
            return _message(error), None
        return (
            f"Each family's dev-selected classifier at {budget} labels, fine-tuned from its pretrained "
            "language model or from scratch."
        ), pd.DataFrame(rows, columns=columns)

    with gr.Tab("Classify"):
        with gr.Row():
            text = gr.Textbox(EXAMPLE, label="Sentence", lines=2, scale=4)
            budget = gr.Dropdown(
                budgets,
                value=budgets[-1] if budgets else None,
                label="labels fine-tuned on",
                allow_custom_value=True,
                scale=1,
            )  # a budget the run lacks gets a message
        button = gr.Button("Classify", variant="primary", elem_id="classify-submit")
        status = gr.Markdown()
        table = gr.Dataframe(label="Predictions", interactive=False, wrap=True)
        button.click(classify, [text, budget], [status, table], api_name="classify")


def _generate_tab(run: RunFolder) -> None:
    def generate(prompt, mode, max_new_tokens, seed):
        try:
            outputs = inference.generate(run, prompt, mode == "sampled", int(max_new_tokens), int(seed))
        except DemoMessage as error:
            return _message(error), "", "", None
        speed = pd.DataFrame(
            [[o["family"], o["new_tokens"], round(o["seconds"], 4), round(o["tokens_per_s"], 1)] for o in outputs],
            columns=["model", "new tokens", "seconds", "tokens/s"],
        )
        return (
            (f"{mode} decoding with the cache (the recurrent state / the key-value cache), on this machine's CPU."),
            outputs[0]["text"],
            outputs[1]["text"],
            speed,
        )

    with gr.Tab("Generate"):
        prompt = gr.Textbox("The film was", label="Prompt", lines=2)
        with gr.Row():
            mode = gr.Radio(["greedy", "sampled"], value="greedy", label="decoding")
            max_tokens = gr.Slider(1, 128, value=40, step=1, label="max new tokens")
            seed = gr.Number(0, precision=0, label="seed (sampled)")
        button = gr.Button("Generate", variant="primary")
        status = gr.Markdown()
        with gr.Row():
            recurrent_text = gr.Textbox(label="recurrent LM", lines=5)
            decoder_text = gr.Textbox(label="decoder (GPT-style)", lines=5)
        speed = gr.Dataframe(label="Speed", interactive=False)
        button.click(
            generate,
            [prompt, mode, max_tokens, seed],
            [status, recurrent_text, decoder_text, speed],
            api_name="generate",
        )


def _fill_mask_tab(run: RunFolder) -> None:
    def fill_mask(text):
        try:
            filled, rows = inference.fill_mask(run, text)
        except DemoMessage as error:
            return _message(error), "", None
        return (
            "The encoder reads both sides of each mask.",
            filled,
            pd.DataFrame(rows, columns=["mask", "rank", "token", "probability"]),
        )

    with gr.Tab("Fill-mask"):
        text = gr.Textbox("The film was <mask> and the acting was superb .", label="Text with <mask>", lines=2)
        button = gr.Button("Fill", variant="primary")
        status = gr.Markdown()
        filled = gr.Textbox(label="Filled in (top-1)")
        table = gr.Dataframe(label="Top tokens per mask", interactive=False)
        button.click(fill_mask, [text], [status, filled, table], api_name="fill_mask")


def _inside_tab(run: RunFolder) -> None:
    def inside(text):
        try:
            grads = inference.last_position_gradients(run, text)
            attention = inference.decoder_attention(run, text)
            hidden = inference.recurrent_hidden_norms(run, text)
        except DemoMessage as error:
            return _message(error), None, None, None
        first = next(iter(grads.values()))
        table = pd.DataFrame(
            {
                "position": range(len(first["tokens"])),
                "token": first["tokens"],
                **{title: g["norms"] for title, g in grads.items()},
            }
        )
        return (
            (
                "Gradient of the last token's loss with respect to each earlier input embedding: a recurrent "
                "network's signal fades with distance (vanishing gradients), attention reaches every position "
                "in one step."
            ),
            plots.gradients_figure(grads),
            plots.attention_and_hidden_figure(attention, hidden),
            table,
        )

    with gr.Tab("Inside the model"):
        text = gr.Textbox(EXAMPLE, label="Text", lines=2)
        button = gr.Button("Look inside", variant="primary")
        status = gr.Markdown()
        gradient_plot = gr.Image(label="Gradient of the last token's loss", type="numpy", format="png")
        attention_plot = gr.Image(label="Decoder attention | recurrent hidden-state norms", type="numpy", format="png")
        table = gr.Dataframe(label="Gradient norm per position", interactive=False)
        button.click(inside, [text], [status, gradient_plot, attention_plot, table], api_name="inside")


def _results_tab(run: RunFolder, demo: gr.Blocks) -> None:
    def results():
        try:
            files = run.results_files()
        except DemoMessage as error:
            return _message(error), "", None, None, None
        table = pd.read_csv(files["summary.csv"]) if "summary.csv" in files else None
        images = [str(files[name]) if name in files else None for name in ("accuracy_vs_labels.png", "gap.png")]
        return f"From {run.root}.", files["summary.md"].read_text(encoding="utf-8"), table, *images

    with gr.Tab("Results"):
        button = gr.Button("Reload")
        status = gr.Markdown()
        summary = gr.Markdown()
        table = gr.Dataframe(label="summary.csv", interactive=False)
        with gr.Row():
            accuracy_plot = gr.Image(label="accuracy vs labels", type="filepath")
            gap_plot = gr.Image(label="transfer gap", type="filepath")
        outputs = [status, summary, table, accuracy_plot, gap_plot]
        button.click(results, None, outputs, api_name="results")
        # the tab is filled when the page loads, not only on Reload
        demo.load(results, None, outputs, api_name=False)


def launch(run_dir: str | Path, host: str = "127.0.0.1", port: int | None = None) -> None:
    # the plots are read from the run folder, which gradio serves only when allowed
    build_app(run_dir).launch(server_name=host, server_port=port, allowed_paths=[str(Path(run_dir).resolve())])
