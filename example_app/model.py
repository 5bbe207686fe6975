"""A stand-in for an ML model: deterministic, dependency-free, and slow enough to see."""

from __future__ import annotations

import hashlib
import math
import time

VOCABULARY = 4096


def tokenize(text: str) -> list[int]:
    """v1 preprocessing: whitespace tokens hashed into a fixed vocabulary."""
    return [int(hashlib.sha1(word.encode()).hexdigest(), 16) % VOCABULARY for word in text.split()]


def normalize(text: str) -> str:
    """v2 preprocessing, step 1: case-folding and punctuation stripping."""
    return "".join(ch for ch in text.casefold() if ch.isalnum() or ch.isspace())


def embed(tokens: list[int], width: int = 64) -> list[float]:
    """v2 preprocessing, step 2: a bag-of-tokens embedding."""
    vector = [0.0] * width
    for token in tokens:
        vector[token % width] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def predict(features: list[float] | list[int], delay: float = 0.01) -> dict[str, float]:
    """The "model": a fixed scoring rule plus a little latency, like a real forward pass."""
    time.sleep(delay)
    score = sum(float(x) for x in features) % 1.0
    return {"positive": round(score, 4), "negative": round(1 - score, 4)}
