"""The Family record: what it says about each family holds for its classes, and ULMFiT's layer groups follow
the names it gives rather than the order modules happen to be registered in."""

import pytest
import torch
import transformers
from torch import nn

from seqlab.errors import SeqlabUsageError
from seqlab.models import FAMILIES, family_of_config, family_of_model_type
from seqlab.training.optim import layer_groups

SMALL = {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2}
TRANSFORMER = {"num_attention_heads": 2, "intermediate_size": 32}


def small_config(family):
    return family.config_class(**SMALL, **(TRANSFORMER if family.has_position_table else {}))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_record_matches_its_classes(name):
    family = FAMILIES[name]
    config = small_config(family)
    assert family.model_type == f"seqlab_{name}"
    assert family_of_model_type(family.model_type) is family and family_of_config(config) is family
    config.max_position_embeddings = 8
    longer = torch.ones(1, 12, dtype=torch.long)
    if family.has_position_table:  # positions past the table do not exist
        with pytest.raises((IndexError, ValueError, RuntimeError)):
            family.base_model_class(config)(longer)
    else:
        assert family.base_model_class(config)(longer).last_hidden_state.shape[1] == 12
    for auto_name, model_class in family.auto_classes.items():
        # the Auto class resolves the config to the record's class (seqlab registered it on import)
        assert type(getattr(transformers, auto_name).from_config(config)) is model_class
    assert family.auto_classes[family.lm_auto_name] is family.lm_class
    assert {"causal": "AutoModelForCausalLM", "masked": "AutoModelForMaskedLM"}[family.objective] == family.lm_auto_name


def test_unknown_model_type_has_no_family():
    assert family_of_model_type("gpt2") is None and family_of_config(transformers.GPT2Config()) is None


def names(groups):
    return [[name for name, _ in group] for group in groups]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_layer_groups_do_not_depend_on_registration_order(name):
    family = FAMILIES[name]
    torch.manual_seed(0)
    model = family.classifier_class(small_config(family))
    before = names(layer_groups(model))
    body = model.base_model
    # register the body's children in reverse (a final norm above the layers, the embeddings last)
    body._modules = dict(reversed(list(body._modules.items())))
    assert names(layer_groups(model)) == before
    assert before[0][0].endswith("embed_tokens.weight") and len(before) == SMALL["num_hidden_layers"] + 2
    for top_module in family.ulmfit_top:
        assert any(f".{top_module}." in n for n in before[-1])


def test_a_body_parameter_in_no_named_group_is_refused():
    family = FAMILIES["decoder"]
    model = family.lm_class(small_config(family))
    model.base_model.adapter = nn.Linear(4, 4)  # a module the record does not name
    with pytest.raises(SeqlabUsageError, match=r"adapter\.weight.*ulmfit_bottom or ulmfit_top"):
        layer_groups(model)
