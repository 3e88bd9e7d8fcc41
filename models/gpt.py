"""A small GPT (a decoder-only transformer, as in nanoGPT) over bytes, for the chars data."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import models


class Block(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads) \
            .permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


@models.register('gpt')
class GPT(nn.Module):
    """Token ids (N, T) -> next-token logits (N, T, vocab_size), each position seeing only the
    ones before it."""
    input_dtype = torch.long  # token ids below vocab_size, not images

    def __init__(self, vocab_size=256, block_size=128, dim=128, layers=2, heads=4, dropout=0.0):
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.input_shape = (block_size,)
        self.tokens, self.positions = nn.Embedding(vocab_size, dim), nn.Embedding(block_size, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads, dropout) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab_size)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.head(self.norm(self.blocks(self.tokens(ids) + self.positions(positions))))

    @torch.no_grad()
    def generate(self, ids, n, temperature=0.8, generator=None):
        """`ids` (1, T) followed by `n` sampled tokens; `generator`: draws without touching
        torch's global random state (a run's exact resume depends on it)."""
        for _ in range(n):
            logits = self(ids[:, -self.block_size:])[:, -1] / temperature
            probs = logits.float().softmax(-1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return ids
