"""A tiny local "pretrained" BERT for SCALE=smoke runs of the GLUE table on machines without a model hub.

The weights are random (seeded): the checkpoint exists to exercise the same path as a real one (load with
``from_pretrained``, tokenize with its own WordPiece vocabulary, project onto Kronecker factors, fine-tune),
not to carry any pretraining.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD = re.compile(r"\w+|[^\w\s]")
DONE = "SMOKE_BERT.json"


def wordpiece_vocab(texts: Iterable[str], max_words: int = 2000) -> list[str]:
    """Specials, every character seen (alone and as a ``##`` continuation), then the most frequent words.

    With every character in the vocabulary, WordPiece can always split an unseen word instead of mapping it
    to ``[UNK]``.
    """
    words: collections.Counter[str] = collections.Counter()
    chars: set[str] = set()
    for text in texts:
        for word in _WORD.findall(text.lower()):
            words[word] += 1
            chars.update(word)
    pieces = sorted(chars) + [f"##{c}" for c in sorted(chars)]
    frequent = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:max_words]
    return SPECIALS + pieces + frequent


def write_tiny_bert(dest: Path, texts: Iterable[str], hidden: int = 32, layers: int = 2, heads: int = 2,
                    ffn: int = 64, max_positions: int = 128, max_words: int = 2000, seed: int = 0,
                    source: str = "") -> Path:
    """Save a randomly initialised ``BertModel`` and its WordPiece tokenizer to ``dest``; skipped when ``dest``
    already holds one made with the same settings and ``source`` (a name for where ``texts`` came from)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    dest = Path(dest)
    settings = {"hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "max_positions": max_positions,
                "max_words": max_words, "seed": seed, "source": source}
    done = dest / DONE
    if done.is_file() and json.loads(done.read_text()) == settings:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    vocab = wordpiece_vocab(texts, max_words)
    # transformers 5 takes the vocabulary itself (``vocab=``); earlier versions read ``vocab_file``
    tokenizer = BertTokenizerFast(vocab={piece: i for i, piece in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(dest))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=max_positions,
                        pad_token_id=0)
    BertModel(config).save_pretrained(str(dest))
    done.write_text(json.dumps(settings, sort_keys=True) + "\n")
    return dest


def ensure_tiny_bert(dest: Path, train_file: Path) -> Path:
    """`write_tiny_bert` over the sentence pairs of a JSON-lines training file (the committed SNLI sample), as the
    GLUE table's pretrained half loads it at SCALE=smoke."""
    if not train_file.is_file():
        raise FileNotFoundError(f"the GLUE smoke table reads its vocabulary from {train_file} (data.train), which is "
                                "missing; the committed SNLI sample lives in data/snli/")
    rows = [json.loads(line) for line in train_file.read_text().splitlines() if line.strip()]
    return write_tiny_bert(dest, (f"{r['sentence1']} {r['sentence2']}" for r in rows),
                           source=f"{train_file.name}:{train_file.stat().st_size}")
