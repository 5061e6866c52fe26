"""Text as data: strings → fixed-length rows of token ids, computed once at load time (no vocabulary file, no
download). The encoders that read these ids live in encoders/text.py (see its docstring for the features).

* `hash_tokens`: word unigrams and bigrams of the lower-cased text and character n-grams of every word, hashed
  with CRC32 into `buckets` ids (0 = padding), stable across runs and machines;
* `byte_tokens`: the UTF-8 bytes (id = byte + 1, 0 = padding);
* `hf_text_features`: mean-pooled features of a LOCAL Hugging Face model folder (frozen; needs `transformers`).
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable, Sequence

import torch

from ..errors import ContrastkitError

__all__ = ["DEFAULT_BUCKETS", "DEFAULT_MAX_TOKENS", "byte_tokens", "hash_tokens", "hf_text_features", "text_features"]

DEFAULT_BUCKETS = 2**16
DEFAULT_MAX_TOKENS = 256
_WORD = re.compile(r"[0-9a-z]+")


def _bucket(feature: str, buckets: int) -> int:
    return zlib.crc32(feature.encode("utf-8")) % buckets + 1


def text_features(text: str, char_ngrams: tuple[int, int] = (3, 5)) -> list[str]:
    """The hashed features of one string, in order: words, word bigrams, character n-grams."""
    words = _WORD.findall(str(text).lower())
    feats = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    lo, hi = char_ngrams
    for w in words:
        s = f"<{w}>"
        for n in range(lo, hi + 1):
            feats += [f"c:{s[i:i + n]}" for i in range(len(s) - n + 1)]
    return feats


def hash_tokens(texts: Iterable[str], buckets: int = DEFAULT_BUCKETS, max_tokens: int = DEFAULT_MAX_TOKENS,
                char_ngrams: tuple[int, int] = (3, 5)) -> torch.Tensor:
    """(N, L) int64 bucket ids (0 = padding), L = min(max_tokens, the longest row)."""
    rows = [[_bucket(f, buckets) for f in text_features(t, char_ngrams)][:max_tokens] for t in texts]
    width = max([len(r) for r in rows] + [1])
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            out[i, : len(r)] = torch.as_tensor(r)
    return out


def byte_tokens(texts: Iterable[str], max_len: int = 128) -> torch.Tensor:
    """(N, L) int64 byte ids + 1 (0 = padding), L = min(max_len, the longest row in bytes)."""
    rows = [list(str(t).encode("utf-8"))[:max_len] for t in texts]
    width = max([len(r) for r in rows] + [1])
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            out[i, : len(r)] = torch.as_tensor(r) + 1
    return out


def hf_text_features(texts: Sequence[str], model_path: str, batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled last hidden states of a LOCAL Hugging Face model folder (frozen features, no download)."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ContrastkitError("a Hugging Face text model needs `transformers` installed "
                               "(pip install transformers); or use the built-in hashed text encoder") from e
    try:
        tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    except Exception as e:  # pragma: no cover - optional dependency
        raise ContrastkitError(f"cannot load a local Hugging Face model from {model_path!r}: {e}") from e
    outs = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            enc = tok(list(texts[s:s + batch_size]), padding=True, truncation=True, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            outs.append((h * m).sum(1) / m.sum(1).clamp(min=1))
    return torch.cat(outs).float()
