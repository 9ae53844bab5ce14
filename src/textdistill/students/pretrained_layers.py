"""``pretrained-layers``: the bottom ``num_layers`` layers of a pretrained BERT encoder, mean-pooled.

A student initialised from a pretrained model, as DistilBERT initialises from BERT (Sanh et al. 2019), keeping the
bottom layers: Sajjad et al. (2023, "On the effect of dropping layers of pre-trained transformer models") found
dropping the top layers works best. It is the student for tasks where a CNN trained from scratch cannot get close
to the teacher (short texts such as TREC questions).

The word embedding is the student's own ``embedding`` (so Word2Vec init and vocabulary pruning work as for every
student); a ``transformers.BertModel`` adds position and token-type embeddings and LayerNorm and runs the layers
(eager attention: the same masked softmax on every backend, and a graph the ONNX tracer exports). The output is
averaged over real tokens, so extra right-padding changes nothing.

``pretrained`` (a directory or hub name) is read by ``init_pretrained`` on the training path only; a saved student
loads its own weights and never reads it again.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from textdistill.config import ConfigError
from textdistill.students.registry import StudentModule, check_arch, kept_count, register, top_indices, valid_positions

if TYPE_CHECKING:
    from transformers import BertConfig, BertModel  # type: ignore[attr-defined]

logger = logging.getLogger(__name__)

# arch key -> the BertConfig attribute it must equal in the pretrained model
_MATCHED = {
    "embedding_dim": "hidden_size",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "max_positions": "max_position_embeddings",
}
# Fixed in the student: a pretrained model that differs would compute something else with the same weights.
_FIXED: dict[str, Any] = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute"}
_TOKEN_TYPES = "embeddings.token_type_embeddings.weight"


@dataclass
class PretrainedLayersConfig:
    """Architecture of ``pretrained-layers`` (defaults: MiniLM-L6, e.g. ``all-MiniLM-L6-v2``, cut to 3 layers)."""

    pretrained: str | None = None  # BERT directory or hub name whose weights initialise it (null: random init)
    num_layers: int = 3  # bottom layers kept (at most the pretrained model's)
    embedding_dim: int = 384  # hidden size (= the pretrained model's hidden_size)
    num_heads: int = 12  # attention heads (= the pretrained model's)
    intermediate_size: int = 1536  # feed-forward units per layer (= the pretrained model's)
    max_positions: int = 512  # position embeddings: the longest input (= the pretrained model's)
    dropout: float = 0.1  # hidden and attention dropout in the layers, and before the classifier

    def __post_init__(self) -> None:
        check_arch(self, ("num_layers", "embedding_dim", "num_heads", "intermediate_size", "max_positions"))
        if self.embedding_dim % self.num_heads:
            raise ConfigError(
                f"student.arch.embedding_dim ({self.embedding_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.pretrained is not None and not self.pretrained.strip():
            raise ConfigError("student.arch.pretrained must be a model directory or hub name, or null")


def bert_config(config: PretrainedLayersConfig) -> BertConfig:
    """The ``BertConfig`` of the student's encoder: a 1-row word embedding (the student drops it and feeds its own
    ``embedding``) and one token type (every input is a single segment, type 0)."""
    from transformers import BertConfig  # here: importing the modelling code costs seconds that other students skip

    bert = BertConfig(
        vocab_size=1,
        hidden_size=config.embedding_dim,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_positions,
        type_vocab_size=1,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        pad_token_id=0,
        **_FIXED,
    )
    bert._attn_implementation = "eager"  # one masked softmax on every backend; the ONNX tracer exports it
    return bert


@register("pretrained-layers")
class PretrainedLayersStudent(StudentModule):
    """``embedding`` → ``encoder`` (a BertModel: positions, LayerNorm, layers) → masked mean → ``classifier``."""

    config_class = PretrainedLayersConfig

    def __init__(self, config: PretrainedLayersConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        from transformers import BertModel  # type: ignore[attr-defined]

        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        self.encoder = BertModel(bert_config(config), add_pooling_layer=False)
        # The encoder reads ``inputs_embeds`` from ``embedding``: its own table would be a dead parameter.
        self.encoder.embeddings.register_module("word_embeddings", None)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.embedding_dim, num_labels)

    @classmethod
    def pretrained_source(cls, config: Any) -> str | None:
        """``arch.pretrained``: the BERT model ``init_pretrained`` copies the embeddings and bottom layers from."""
        return config.pretrained if isinstance(config, PretrainedLayersConfig) else None

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → the last kept layer's output (B, T, embedding_dim)."""
        width = input_ids.shape[1]
        if width > self.config.max_positions:
            raise ValueError(f"sequence width {width} exceeds max_positions={self.config.max_positions}")
        output = self.encoder(inputs_embeds=self.embedding(input_ids), attention_mask=attention_mask)
        return output.last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels); T ≤ max_positions."""
        mask, lengths = valid_positions(attention_mask)
        hidden = self.hidden_states(input_ids, mask.long())  # an empty row attends to (and pools) its first token
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / lengths.unsqueeze(-1).to(hidden.dtype)
        return self.classifier(self.dropout(pooled))

    def init_pretrained(self) -> bool:
        """Copy the word, position and token-type embeddings, the embedding LayerNorm and layers
        ``0..num_layers-1`` of ``arch.pretrained``; False when it is null. A model that is not a BERT, differs in
        size or has fewer layers is a ValueError naming the ``student.arch`` keys and the pretrained values."""
        source = self.config.pretrained
        if source is None:
            return False
        pretrained = load_bert(source)
        self._check_compatible(pretrained.config, source)
        state = pretrained.state_dict()
        # The encoder's own names are the pretrained ones minus the word embedding and the layers past num_layers.
        copied = {name: state[name] for name in self.encoder.state_dict()}
        copied[_TOKEN_TYPES] = state[_TOKEN_TYPES][:1]  # every input is segment 0
        with torch.no_grad():
            self.embedding.weight.copy_(state["embeddings.word_embeddings.weight"])
        self.encoder.load_state_dict(copied)
        logger.info("pretrained-layers: embeddings and layers 0..%d from %s", self.config.num_layers - 1, source)
        return True

    def _check_compatible(self, pretrained: Any, source: str) -> None:
        """A ValueError listing every way the pretrained model's ``BertConfig`` does not fit this student."""
        problems = [
            f"student.arch.{key}={getattr(self.config, key)} but the pretrained {attribute} is "
            f"{getattr(pretrained, attribute)}"
            for key, attribute in _MATCHED.items()
            if getattr(self.config, key) != getattr(pretrained, attribute)
        ]
        if self.config.num_layers > pretrained.num_hidden_layers:
            problems.append(
                f"student.arch.num_layers={self.config.num_layers} but the pretrained model has only "
                f"{pretrained.num_hidden_layers} layers (num_hidden_layers)"
            )
        if self.embedding.num_embeddings != pretrained.vocab_size:
            problems.append(
                f"the student's vocabulary (the tokenizer's) has {self.embedding.num_embeddings} tokens but the "
                f"pretrained vocab_size is {pretrained.vocab_size}: use the pretrained model's tokenizer"
            )
        problems += [
            f"the pretrained {key} is {getattr(pretrained, key, None)!r}; pretrained-layers supports {value!r}"
            for key, value in _FIXED.items()
            if getattr(pretrained, key, value) != value
        ]
        if problems:
            raise ValueError(f"student.arch.pretrained={source!r} does not fit the student: " + "; ".join(problems))

    def shrunk(self, amount: float) -> nn.Module:
        """Keep the feed-forward units with the largest L2 norm (intermediate row + bias, output column) per layer.

        Attention heads are kept; so is ``pretrained`` in the config, which only the training path reads.
        """
        state, keep = dict(self.state_dict()), kept_count(self.config.intermediate_size, amount)
        for layer in range(self.config.num_layers):
            prefix = f"encoder.encoder.layer.{layer}."
            up, up_bias = state[prefix + "intermediate.dense.weight"], state[prefix + "intermediate.dense.bias"]
            down = state[prefix + "output.dense.weight"]
            kept = top_indices((up.pow(2).sum(dim=1) + up_bias.pow(2) + down.pow(2).sum(dim=0)).sqrt(), keep)
            state[prefix + "intermediate.dense.weight"], state[prefix + "intermediate.dense.bias"] = (
                up[kept],
                up_bias[kept],
            )
            state[prefix + "output.dense.weight"] = down[:, kept]
        return self.rebuilt(dataclasses.replace(self.config, intermediate_size=keep), state)


def load_bert(source: str) -> BertModel:
    """The base ``BertModel`` of a local directory or hub name (a fine-tuned classifier's body too), float32, eager.

    Anything that cannot be loaded (no such directory, hub unreachable, not a model) is one ValueError naming it.
    """
    from transformers import AutoConfig, BertModel  # type: ignore[attr-defined]

    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as error:  # missing directory, hub unreachable, unknown name: one clear message
        raise ValueError(f"student.arch.pretrained={source!r} could not be loaded: {error}") from error
    if config.model_type != "bert":  # checked before reading any weights
        raise ValueError(
            f"student.arch.pretrained={source!r} is a {config.model_type!r} model; pretrained-layers needs a "
            "BERT-architecture model (model_type 'bert')"
        )
    try:
        return BertModel.from_pretrained(source, attn_implementation="eager").float()
    except Exception as error:  # damaged or missing weights files
        raise ValueError(f"student.arch.pretrained={source!r}: could not load its weights: {error}") from error
