"""Shapeshifter: Transformers whose weight matrices are sums of Kronecker products of small factors."""
