"""CIDEr-D without Java, vectorised for rewards: many candidates against fixed references.

Written here rather than calling pycocoevalcap because self-critical training scores a few
hundred sampled captions per step: pycocoevalcap rebuilds every reference's tf-idf vector
in Python for each call, which would cost more than the step itself. Here the references'
n-gram tables, tf-idf vectors and norms are computed once (:class:`CiderD`); a call counts
only the candidates' n-grams, all candidates at once with numpy.

The numbers are pycocoevalcap's ``Cider`` (1.2), which is CIDEr-D as coco-caption defines
it (Vedantam et al. 2015, section "CIDEr-D"), not the original CIDEr: n-grams n = 1..4
with equal weights, tf-idf vectors with ``idf = log(N) - log(max(1, df))`` where ``df``
counts the videos whose references contain the n-gram and N is the number of videos,
candidate weights clipped at the reference's, ``min(g_c, g_r) * g_r``, a Gaussian length
penalty ``exp(-(l_c - l_r)**2 / (2 * sigma**2))`` with sigma 6, the mean over references,
times 10. Like pycocoevalcap, the lengths ``l`` are counted in bigrams (``max(0, words - 1)``),
which gives the same differences as words for every caption of two or more words.
tests/test_scst.py checks equality with pycocoevalcap's ``Cider`` to 1e-9.

The document frequencies come from the references given to :class:`CiderD` (for training
rewards: the training split's, once), not from the candidates being scored.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["CiderD", "TokenIds"]


class TokenIds:
    """Tokens (words, or any hashable) -> dense ints, starting from an optional vocabulary.

    With ``vocabulary`` = a model's id -> word list, a known word keeps its model id, so
    sampled token ids can be scored as they are; words outside it get ids after it, so
    that two different unknown words never count as the same n-gram.
    """

    def __init__(self, vocabulary: Sequence[Hashable] = ()) -> None:
        self.ids: dict[Hashable, int] = {}
        for index, token in enumerate(vocabulary):
            self.ids.setdefault(token, index)
        self.size = len(vocabulary)

    def add(self, tokens: Sequence[Hashable]) -> list[int]:
        """Ids of ``tokens``, giving new tokens new ids."""
        out = []
        for token in tokens:
            if token not in self.ids:
                self.ids[token] = self.size
                self.size += 1
            out.append(self.ids[token])
        return out

    def lookup(self, tokens: Sequence[Hashable]) -> list[int]:
        """Ids of ``tokens``; unknown tokens get ids >= :attr:`size` (one per distinct
        token of this call), which match no reference n-gram."""
        fresh: dict[Hashable, int] = {}
        out = []
        for token in tokens:
            index = self.ids.get(token)
            if index is None:
                index = fresh.setdefault(token, self.size + len(fresh))
            out.append(index)
        return out


def _pad(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id lists -> (N, L) int64 (zero-padded) and lengths (N,)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    tokens = np.zeros((len(sequences), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tokens[row, :len(sequence)] = sequence
    return tokens, lengths


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy 2's hash-based ``np.unique`` was 10x slower here)."""
    values = np.sort(values, kind="stable")
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


class CiderD:
    """CIDEr-D of candidates against per-video references with fixed document frequencies.

    Args:
        references: ``references[v]`` = the reference captions of video ``v``, each a
            sequence of token ids (ints >= 0; see :class:`TokenIds` for words). Every
            video needs at least one reference. ``df`` is counted over these videos.
        n: the longest n-gram (4).
        sigma: the length penalty's standard deviation (6).
        num_ids: ids below this can match references (default: the largest reference id
            + 1); a candidate id at or above it is a token that no reference has.
    """

    def __init__(self, references: Sequence[Sequence[Sequence[int]]], *, n: int = 4,
                 sigma: float = 6.0, num_ids: int | None = None) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not references or any(len(refs) == 0 for refs in references):
            raise ValueError("every video needs at least one reference")
        self.n, self.sigma = n, float(sigma)
        self.num_videos = len(references)
        flat = [list(ref) for refs in references for ref in refs]
        ref_video = np.repeat(np.arange(self.num_videos), [len(r) for r in references])
        tokens, lengths = _pad(flat)
        if tokens.size and tokens.min() < 0:
            raise ValueError("token ids must be >= 0")
        self.num_ids = max(int(tokens.max(initial=0)) + 1, num_ids or 0)
        self.log_docs = float(np.log(float(self.num_videos)))
        self.token_ids: TokenIds | None = None
        # Per order k: the sorted (prefix code, last id) keys of every reference k-gram;
        # a k-gram's code is its index there, its global code offsets[k - 1] + index.
        self.tables: list[np.ndarray] = []
        self.idf: list[np.ndarray] = []
        self.offsets: list[int] = []
        codes = np.zeros_like(tokens)          # the k-grams' prefixes; order 0: code 0
        entries = []                           # per order: (ref, global code, tf-idf)
        ref_norm = np.zeros((len(flat), n))
        rows_all = np.arange(len(flat))[:, None]
        offset = 0
        for k in range(1, n + 1):
            width = max(tokens.shape[1] - k + 1, 0)
            valid = np.arange(width)[None, :] < (lengths - k + 1)[:, None]
            keys = codes[:, :width] * self.num_ids + tokens[:, k - 1:k - 1 + width]
            table, inverse = np.unique(keys[valid], return_inverse=True)
            size = max(len(table), 1)
            rows = np.broadcast_to(rows_all, keys.shape)[valid]
            # df: the number of videos whose references hold the k-gram.
            video_code = _distinct(ref_video[rows] * size + inverse)
            df = np.bincount(video_code % size, minlength=len(table))
            idf = self.log_docs - np.log(np.maximum(1.0, df))
            # tf per reference -> tf-idf values and their norm.
            pair, tf = np.unique(rows * size + inverse, return_counts=True)
            ref, code = pair // size, pair % size
            value = tf * idf[code]
            ref_norm[:, k - 1] = np.sqrt(np.bincount(ref, value ** 2, minlength=len(flat)))
            entries.append((ref, offset + code, value))
            self.tables.append(table)
            self.idf.append(idf)
            self.offsets.append(offset)
            offset += len(table)
            codes = np.zeros(keys.shape, dtype=np.int64)
            codes[valid] = inverse
        self.num_codes = self.offsets[-1] + len(self.tables[-1])

        # Reference side per video, padded to the most references of one video.
        counts = np.bincount(ref_video, minlength=self.num_videos)
        self.num_refs = counts
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.arange(len(flat)) - first[ref_video]         # reference index in its video
        most = int(counts.max())
        self.ref_norm = np.zeros((self.num_videos, most, n))
        self.ref_norm[ref_video, slot] = ref_norm
        self.ref_len = np.zeros((self.num_videos, most))
        self.ref_len[ref_video, slot] = self._bigram_lengths(lengths)

        # Cells: (video, global code) -> the references of that video holding the n-gram
        # and their tf-idf values, sorted by cell (CSR layout).
        ref, gcode, value = (np.concatenate(parts) for parts in zip(*entries, strict=True))
        cell = ref_video[ref] * max(self.num_codes, 1) + gcode
        order = np.argsort(cell, kind="stable")
        self.cell_keys, starts = np.unique(cell[order], return_index=True)
        self.cell_ptr = np.append(starts, len(order)).astype(np.int64)
        self.cell_slot = slot[ref[order]]
        self.cell_value = value[order]

    @classmethod
    def from_words(cls, references: Sequence[Sequence[Sequence[str]]],
                   vocabulary: Sequence[str] = (), **kwargs) -> CiderD:
        """References as tokenised words; ``vocabulary`` fixes the ids of known words
        (a model's id -> word list), see :class:`TokenIds`. The result's ``token_ids``
        maps words to the ids it scores."""
        table = TokenIds(vocabulary)
        encoded = [[table.add(ref) for ref in refs] for refs in references]
        scorer = cls(encoded, num_ids=table.size, **kwargs)
        scorer.token_ids = table
        return scorer

    def _bigram_lengths(self, lengths: np.ndarray) -> np.ndarray:
        # pycocoevalcap counts a caption's length in bigrams (0 when n = 1).
        return np.maximum(lengths - 1, 0).astype(np.float64) if self.n >= 2 else \
            np.zeros(len(lengths))

    def score_words(self, videos: Sequence[int], candidates: Sequence[Sequence[str]],
                    ) -> np.ndarray:
        """Scores (C,) of tokenised word candidates (needs :meth:`from_words`)."""
        table: TokenIds = self.token_ids
        return self.score(videos, [table.lookup(c) for c in candidates])

    def score(self, videos: Sequence[int], candidates: Sequence[Sequence[int]]) -> np.ndarray:
        """Scores (C,) float64 of candidate id lists; ``videos[i]`` is candidate i's video."""
        tokens, lengths = _pad(candidates)
        return self.score_padded(np.asarray(videos, dtype=np.int64), tokens, lengths)

    def score_padded(self, videos: np.ndarray, tokens: np.ndarray,
                     lengths: np.ndarray) -> np.ndarray:
        """The vectorised core: every candidate at once.

        Args:
            videos: (C,) the video index of each candidate.
            tokens: (C, L) int token ids; only the first ``lengths[i]`` of row i count.
            lengths: (C,) words per candidate (e.g. the position of the first <eos>).
        Returns:
            (C,) float64 CIDEr-D scores.
        """
        videos = np.asarray(videos, dtype=np.int64)
        tokens = np.asarray(tokens, dtype=np.int64)
        lengths = np.minimum(np.asarray(lengths, dtype=np.int64), tokens.shape[1])
        count = len(videos)
        if count == 0:
            return np.zeros(0)
        if videos.min() < 0 or videos.max() >= self.num_videos:
            raise ValueError(f"video index out of range 0..{self.num_videos - 1}")
        n, most = self.n, self.ref_norm.shape[1]
        wide = max(self.num_ids, int(tokens.max(initial=0)) + 1)
        dot = np.zeros(count * most * n)
        hyp_sq = np.zeros(count * n)
        codes = np.zeros_like(tokens)          # the k-grams' prefixes; order 0: code 0
        known_prefix = np.ones(tokens.shape, dtype=bool)
        rows_all = np.arange(count)[:, None]
        for k in range(1, n + 1):
            width = max(tokens.shape[1] - k + 1, 0)
            valid = np.arange(width)[None, :] < (lengths - k + 1)[:, None]
            if not valid.any():
                break
            table = self.tables[k - 1]
            ids, prefix = tokens[:, k - 1:k - 1 + width], codes[:, :width]
            keys = prefix * self.num_ids + ids
            index = np.minimum(np.searchsorted(table, keys), max(len(table) - 1, 0))
            known = valid & known_prefix[:, :width] & (ids < self.num_ids)
            known &= table[index] == keys if len(table) else False
            # A k-gram no reference has still needs an identity: its count in a candidate
            # enters the candidate's norm. Codes from len(table) on are this call's.
            unknown = valid & ~known
            new_codes = np.where(known, index, 0)
            space = max(len(table), 1)
            if unknown.any():
                _, inverse = np.unique(prefix[unknown] * wide + ids[unknown],
                                       return_inverse=True)
                new_codes[unknown] = len(table) + inverse
                space = len(table) + int(inverse.max()) + 1
            rows = np.broadcast_to(rows_all, keys.shape)[valid]
            pair, tf = np.unique(rows * space + new_codes[valid], return_counts=True)
            cand, code = pair // space, pair % space
            is_known = code < len(table)
            idf = np.full(len(code), self.log_docs)
            idf[is_known] = self.idf[k - 1][code[is_known]]
            value = tf * idf
            hyp_sq += np.bincount(cand * n + (k - 1), value ** 2, minlength=count * n)
            codes, known_prefix = new_codes, known
            if not len(self.cell_keys):
                continue
            # Clipped dot products with the references of the same video holding the k-gram.
            cand, code, value = cand[is_known], code[is_known], value[is_known]
            cell = videos[cand] * max(self.num_codes, 1) + self.offsets[k - 1] + code
            where = np.minimum(np.searchsorted(self.cell_keys, cell), len(self.cell_keys) - 1)
            hit = self.cell_keys[where] == cell
            cand, value, where = cand[hit], value[hit], where[hit]
            starts = self.cell_ptr[where]
            spans = self.cell_ptr[where + 1] - starts
            entry = np.repeat(np.arange(len(where)), spans)
            position = np.arange(len(entry)) - np.repeat(np.cumsum(spans) - spans, spans) \
                + starts[entry]
            ref_value = self.cell_value[position]
            contribution = np.minimum(value[entry], ref_value) * ref_value
            slot = (cand[entry] * most + self.cell_slot[position]) * n + (k - 1)
            dot += np.bincount(slot, contribution, minlength=count * most * n)
        dot = dot.reshape(count, most, n)
        hyp_norm = np.sqrt(hyp_sq).reshape(count, 1, n)
        norms = hyp_norm * self.ref_norm[videos]
        similarity = np.divide(dot, norms, out=dot.copy(), where=norms != 0)
        delta = self._bigram_lengths(lengths)[:, None] - self.ref_len[videos]
        similarity *= np.exp(-(delta ** 2) / (2 * self.sigma ** 2))[:, :, None]
        # Padding slots have zero dot products, so summing over every slot is exact.
        per_ref = similarity.mean(axis=2).sum(axis=1)
        return per_ref / self.num_refs[videos] * 10.0
