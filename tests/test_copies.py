"""`# Copied from` marks between the standalone model files: every marked copy matches its original, and the
checker (seqlab.models.copies) really fails on a drifted copy, a dangling path or a misplaced mark."""

import ast
import shutil
from pathlib import Path

import pytest

from seqlab.models.copies import FIX, PACKAGE_DIR, check_copies, find_marks, main

R = "seqlab.models.recurrent.modeling_recurrent"
RC = "seqlab.models.recurrent.configuration_recurrent"
D = "seqlab.models.decoder.modeling_decoder"
DC = "seqlab.models.decoder.configuration_decoder"
E = "seqlab.models.encoder.modeling_encoder"
EC = "seqlab.models.encoder.configuration_encoder"

# copy -> its mark (original, with the replacements if any). Deleting, adding or moving a mark fails here.
EXPECTED_MARKS = {
    # shared by the three families: the recurrent family holds the original
    f"{D}.DecoderPreTrainedModel.save_pretrained": f"{R}.RecurrentPreTrainedModel.save_pretrained",
    f"{E}.EncoderPreTrainedModel.save_pretrained": f"{R}.RecurrentPreTrainedModel.save_pretrained",
    f"{DC}.DecoderConfig.from_dict": f"{RC}.RecurrentConfig.from_dict",
    f"{EC}.EncoderConfig.from_dict": f"{RC}.RecurrentConfig.from_dict",
    f"{D}.pool_hidden_states": f"{R}.pool_hidden_states",
    f"{D}._one_cache": f"{R}._one_cache with recurrent state->KV cache",
    f"{D}.DecoderModel.get_input_embeddings": f"{R}.RecurrentModel.get_input_embeddings",
    f"{D}.DecoderModel.set_input_embeddings": f"{R}.RecurrentModel.set_input_embeddings",
    f"{E}.EncoderModel.get_input_embeddings": f"{R}.RecurrentModel.get_input_embeddings",
    f"{E}.EncoderModel.set_input_embeddings": f"{R}.RecurrentModel.set_input_embeddings",
    **{
        f"{module}.{head}.{accessor}": f"{R}.RecurrentForCausalLM.{accessor}"
        for module, head in (
            (R, "RecurrentForSequenceClassification"),
            (D, "DecoderForCausalLM"),
            (D, "DecoderForSequenceClassification"),
            (E, "EncoderForMaskedLM"),
            (E, "EncoderForSequenceClassification"),
        )
        for accessor in ("get_input_embeddings", "set_input_embeddings")
    },
    f"{D}.DecoderForCausalLM.get_output_embeddings": f"{R}.RecurrentForCausalLM.get_output_embeddings",
    f"{D}.DecoderForCausalLM.set_output_embeddings": f"{R}.RecurrentForCausalLM.set_output_embeddings",
    # the classification loss: the decoder's is the original
    f"{R}._classification_loss": f"{D}._classification_loss",
    f"{E}._classification_loss": f"{D}._classification_loss",
    # the two Transformers: the decoder holds the original
    f"{EC}._check_positive_int": f"{DC}._check_positive_int",
    f"{EC}._check_probability": f"{DC}._check_probability",
    f"{EC}._check_positive_float": f"{DC}._check_positive_float",
    f"{EC}._check_token_id": f"{DC}._check_token_id",
    f"{E}.sinusoidal_positional_encoding": f"{D}.sinusoidal_positional_encoding",
    f"{E}.EncoderSelfAttention.__init__": f"{D}.DecoderSelfAttention.__init__ with Decoder->Encoder",
    f"{E}.EncoderMLP": f"{D}.DecoderMLP with Decoder->Encoder",
    f"{E}.EncoderBlock.__init__": f"{D}.DecoderBlock.__init__ with Decoder->Encoder",
    f"{E}.EncoderPreTrainedModel._init_weights": f"{D}.DecoderPreTrainedModel._init_weights",
    f"{E}.EncoderModel.__init__": f"{D}.DecoderModel.__init__ with Decoder->Encoder",
    f"{E}.EncoderModel._embed": f"{D}.DecoderModel._embed",
}


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of src/seqlab/models to break."""
    root = tmp_path / "models"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def mark_of(root: Path, copy: str):
    (mark,) = [m for m in find_marks(root) if m.copy == copy]
    return mark


def copy_block_last_line(mark) -> int:
    """1-based line number of the marked object's last line."""
    tree = ast.parse(mark.file.read_text())
    nodes = {}

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                nodes[prefix + node.name] = node
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return nodes[mark.qualname].end_lineno


# --- the real tree ------------------------------------------------------------------------------------------


def test_every_marked_copy_matches_its_original():
    problems = check_copies()
    assert not problems, "\n".join(map(str, problems))


def test_the_marked_copies_are_exactly_these():
    found = {mark.copy: " ".join(filter(None, (mark.original, mark.replacements))) for mark in find_marks()}
    assert len(found) == len(find_marks())  # one mark per object
    assert found == EXPECTED_MARKS


def test_the_command_line_reports_no_problem(capsys):
    assert main() == 0
    assert f"{len(EXPECTED_MARKS)} copies marked, 0 problems" in capsys.readouterr().err


def test_no_model_file_imports_the_checker_or_seqlab():
    for path in PACKAGE_DIR.glob("*/*_*.py"):  # configuration_*.py and modeling_*.py of each family
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert "copies" not in name and not name.startswith("seqlab"), f"{path} imports {name}"


# --- the checker fails when it should -----------------------------------------------------------------------


@pytest.mark.parametrize("copy", sorted(EXPECTED_MARKS))
def test_a_drifted_copy_is_reported_by_name(tree, copy):
    mark = mark_of(tree, copy)
    lines = mark.file.read_text().split("\n")
    last = copy_block_last_line(mark)
    lines[last - 1] += "  # drifted"
    mark.file.write_text("\n".join(lines))
    problems = check_copies(tree)
    assert [(p.file, p.line, p.name) for p in problems] == [(mark.file, mark.line, mark.qualname)]
    message = str(problems[0])
    assert message.startswith(f"{mark.file}:{mark.line}: {mark.qualname}: ")
    assert "differs from the original" in message and "# drifted" in message and FIX in message


def test_a_changed_line_of_code_is_reported_with_the_line(tree):
    path = tree / "encoder" / "modeling_encoder.py"
    edit(path, "loss = F.mse_loss(logits.float().squeeze(-1)", "loss = F.l1_loss(logits.float().squeeze(-1)")
    changed = next(i for i, line in enumerate(path.read_text().split("\n"), 1) if "F.l1_loss" in line)
    (problem,) = check_copies(tree)
    assert problem.name == "_classification_loss" and problem.file == path
    assert f"line {changed} is " in problem.message
    assert "F.l1_loss" in problem.message and "F.mse_loss" in problem.message


def test_a_drifted_original_reports_each_of_its_copies(tree):
    edit(
        tree / "recurrent" / "modeling_recurrent.py",
        "        return super().save_pretrained(save_directory, *args, **kwargs)",
        "        return super().save_pretrained(save_directory, *args, safe_serialization=True, **kwargs)",
    )
    names = sorted(problem.name for problem in check_copies(tree))
    assert names == ["DecoderPreTrainedModel.save_pretrained", "EncoderPreTrainedModel.save_pretrained"]


def test_a_copy_longer_than_its_original_is_reported(tree):
    edit(
        tree / "encoder" / "modeling_encoder.py",
        "        return self.dropout(self.fc_out(F.gelu(self.fc_in(hidden_states))))\n",
        "        return self.dropout(self.fc_out(F.gelu(self.fc_in(hidden_states))))\n\n    def extra(self):\n"
        "        return None\n",
    )
    (problem,) = check_copies(tree)
    assert problem.name == "EncoderMLP" and "goes on after" in problem.message


def test_the_replacements_are_applied_and_needed(tree):
    path = tree / "encoder" / "modeling_encoder.py"
    edit(path, f"# Copied from {D}.DecoderMLP with Decoder->Encoder", f"# Copied from {D}.DecoderMLP")
    (problem,) = check_copies(tree)
    assert problem.name == "EncoderMLP" and "class DecoderMLP" in problem.message


@pytest.mark.parametrize(
    "target, why",
    [
        (f"{R}.pool_hidden_state", "`pool_hidden_state` is not defined in"),
        (f"{R}.RecurrentModel.pool_hidden_states", "`RecurrentModel.pool_hidden_states` is not defined in"),
        ("seqlab.models.recurrent.modeling_lstm.pool_hidden_states", "no module file for"),
        ("transformers.models.bert.modeling_bert.pool_hidden_states", "must be under `seqlab.models`"),
    ],
)
def test_a_dangling_path_is_reported(tree, target, why):
    path = tree / "decoder" / "modeling_decoder.py"
    edit(path, f"# Copied from {R}.pool_hidden_states\n", f"# Copied from {target}\n")
    line = path.read_text().split("\n").index(f"# Copied from {target}") + 1
    (problem,) = check_copies(tree)
    assert (problem.file, problem.line, problem.name) == (path, line, "pool_hidden_states")
    assert "original is not found" in problem.message and why in problem.message and FIX in problem.message
    assert str(problem).startswith(f"{path}:{line}: pool_hidden_states: `Copied from {target}`")


def test_a_mark_above_no_def_or_class_is_reported(tree):
    path = tree / "decoder" / "modeling_decoder.py"
    edit(path, f"# Copied from {R}.pool_hidden_states\n", f"# Copied from {R}.pool_hidden_states\n\n")
    (problem,) = check_copies(tree)
    assert problem.name == "?" and problem.file == path and "just above a def or class" in problem.message


def test_a_copy_of_a_copy_and_unreadable_replacements_are_reported(tree):
    path = tree / "encoder" / "modeling_encoder.py"
    edit(path, f"# Copied from {D}._classification_loss", f"# Copied from {R}._classification_loss")
    edit(path, f"# Copied from {D}.DecoderMLP with Decoder->Encoder", f"# Copied from {D}.DecoderMLP with Decoder")
    problems = {problem.name: problem.message for problem in check_copies(tree)}
    assert "itself a marked copy" in problems["_classification_loss"]
    assert "cannot read 'with Decoder'" in problems["EncoderMLP"]


def test_marks_inside_strings_are_not_marks(tree):
    path = tree / "recurrent" / "modeling_recurrent.py"
    before = len(find_marks(tree))
    edit(
        path,
        '    """Base of the recurrent family.\n',
        f'    """Base of the recurrent family.\n\n    # Copied from {R}.nothing\n',
    )
    assert len(find_marks(tree)) == before and not check_copies(tree)
