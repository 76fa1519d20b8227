"""Problem pairing for MathFusion: each problem gets its nearest neighbour in the same pool.

MathFusion fuses a problem P_A with P_B = argmax_{P != P_A} sim(P_A, P), where sim is the inner
product of L2-normalised embeddings (cosine similarity). Each problem gets exactly one partner,
so pairs are directional: A -> B does not imply B -> A. When it does, the pair is `mutual`.

Three embedders are provided:

* `OpenAIEmbedder`: dense embeddings from any OpenAI-compatible `/v1/embeddings` endpoint
  (OpenAI itself, vLLM serving an embedding model, text-embeddings-inference). MathFusion paired
  problems with OpenAI's text-embedding-3-large (Pei et al., 2025, arXiv 2503.16212, the pairing
  step of its method), so `--embedder openai:text-embedding-3-large` is the paper's setting.
* `SentenceTransformerEmbedder`: dense embeddings from a sentence-transformers model (a local
  directory or a Hugging Face Hub id), an open substitute that runs offline; sentence-transformers
  is an optional dependency and is imported only when this embedder is built.
* `TfidfEmbedder`: sparse TF-IDF vectors over word uni- and bi-grams. It needs no model, so it
  works offline and in CI; neighbours share vocabulary rather than meaning.

`make_embedder` turns a command-line spec ("auto", "tfidf", "openai:MODEL" or a model) into one of them, and
`pair_problems` embeds a pool and returns one `Pair` per problem. The neighbour search is blocked
so that memory stays within a budget: the N x N similarity matrix is never built.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse

from reasoning.types import InputError

DEFAULT_ST_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Bytes one cell of a (B, N) similarity block costs. Dense: the float32 block itself. Sparse:
# the sparse product (float32 value + up to int64 column index) and its dense copy coexist.
DENSE_CELL_BYTES = 4
SPARSE_CELL_BYTES = 16

# Rows must have norm 1 (or 0: a text with nothing to embed); anything further off means the
# caller forgot to normalise and the "similarities" would not be cosines.
NORM_TOLERANCE = 1e-3


def _log_stderr(line: str) -> None:
    print(line, file=sys.stderr)


class Embedder(Protocol):
    """What `pair_problems` needs: one row per text, rows L2-normalised."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray | scipy.sparse.csr_matrix: ...

    def describe(self) -> dict: ...


class TfidfEmbedder:
    """TF-IDF vectors of word uni- and bi-grams, each row L2-normalised.

    The vocabulary and IDF weights are fitted on the texts passed to `embed`, so each call
    describes one pool: vectors from two calls are not comparable.
    """

    name = "tfidf"

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), sublinear_tf: bool = True,
                 max_features: int | None = 200_000):
        self.ngram_range = tuple(ngram_range)
        self.sublinear_tf = sublinear_tf
        self.max_features = max_features
        self.vocabulary_size: int | None = None

    def embed(self, texts: Sequence[str]) -> scipy.sparse.csr_matrix:
        """Fit TF-IDF on `texts` and return their (N, vocabulary) float32 CSR matrix.

        A text with no indexable term gets an all-zero row; if no text has one, there is nothing
        to compare and InputError says so.
        """
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(ngram_range=self.ngram_range, sublinear_tf=self.sublinear_tf,
                                     max_features=self.max_features, norm="l2", dtype=np.float32)
        try:
            matrix = vectorizer.fit_transform(list(texts))
        except ValueError as exc:
            # scikit-learn raises "empty vocabulary" when every text is blank or punctuation.
            raise InputError(f"TF-IDF found no words in the {len(texts)} texts ({exc}); check that the "
                             f"problem field holds the problem text") from exc
        self.vocabulary_size = len(vectorizer.vocabulary_)
        return matrix.tocsr()

    def describe(self) -> dict:
        """Settings to record next to the pairs, so a run can be reproduced."""
        return {"name": self.name, "ngram_range": list(self.ngram_range), "sublinear_tf": self.sublinear_tf,
                "max_features": self.max_features, "vocabulary_size": self.vocabulary_size}


class SentenceTransformerEmbedder:
    """Dense, L2-normalised float32 embeddings from a sentence-transformers model.

    The model is loaded here, not on first use, so a wrong name fails before any other work.
    `local_files_only` stops the Hub from being contacted (used when the model is known to be
    in the local cache).
    """

    def __init__(self, model: str, batch_size: int = 64, device: str | None = None, *,
                 local_files_only: bool = False):
        if batch_size < 1:
            raise InputError(f"embedding batch size must be >= 1, got {batch_size}")
        try:
            from sentence_transformers import SentenceTransformer  # optional dependency
        except ImportError as exc:
            raise InputError(f"embedding with {model!r} needs sentence-transformers, which is not installed: "
                             f"`pip install sentence-transformers`, or use --embedder tfidf") from exc
        self.model_name = model
        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(model, device=device, local_files_only=local_files_only)
        except (OSError, ValueError) as exc:
            reason = str(exc).strip().rstrip(".")
            raise InputError(f"could not load sentence-transformers model {model!r}: {reason}. Pass a local model "
                             f"directory or a Hub id that can be downloaded, or use --embedder tfidf") from exc
        self.device = str(self.model.device)

    @property
    def name(self) -> str:
        return f"sentence-transformers:{self.model_name}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (N, dim) float32 array of unit-norm rows; a progress bar shows past 1000 texts."""
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=len(texts) > 1000)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:  # no texts: keep the (0, dim) shape
            vectors = vectors.reshape(0, self.model.get_embedding_dimension() or 0)
        return vectors

    def describe(self) -> dict:
        """Settings to record next to the pairs, so a run can be reproduced."""
        return {"name": self.name, "model": self.model_name, "batch_size": self.batch_size, "device": self.device,
                "dimension": self.model.get_embedding_dimension()}


OPENAI_PREFIX = "openai:"
DEFAULT_EMBEDDINGS_KEY_ENV = "OPENAI_API_KEY"


class OpenAIEmbedder:
    """Dense, L2-normalised float32 embeddings from an OpenAI-compatible `/v1/embeddings` endpoint.

    Texts go in batches of `batch_size` per request (OpenAI takes up to 2048 inputs per call);
    the client retries rate limits, 5xx answers, timeouts and dropped connections `max_retries`
    times with exponential back-off, and an error that remains names the endpoint and what to do.
    Rows are normalised here, because only OpenAI's own models promise unit vectors and a served
    open model may not. The key is read from the environment variable `api_key_env` and never
    recorded; a local server without authentication needs none.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = DEFAULT_EMBEDDINGS_KEY_ENV,
                 batch_size: int = 256, max_retries: int = 5, timeout_s: float = 120.0,
                 dimensions: int | None = None):
        if not model:
            raise InputError("--embedder openai:MODEL needs a model name, e.g. openai:text-embedding-3-large")
        if batch_size < 1:
            raise InputError(f"--embedding-batch-size must be >= 1, got {batch_size}")
        if max_retries < 0:
            raise InputError(f"embedding retries must be >= 0, got {max_retries}")
        from openai import OpenAI

        key = os.environ.get(api_key_env) if api_key_env else None
        if not key and not base_url:
            raise InputError(f"--embedder openai:{model} calls OpenAI's API, which needs a key: set ${api_key_env} "
                             f"(or name another variable with --embeddings-api-key-env), or point "
                             f"--embeddings-base-url at a local OpenAI-compatible embeddings server")
        self.model_name, self.batch_size, self.dimensions = model, batch_size, dimensions
        self.base_url = base_url.rstrip("/") if base_url else None
        # A local server without authentication still needs some key for the client to send.
        self.client = OpenAI(api_key=key or "EMPTY", base_url=self.base_url, max_retries=max_retries,
                             timeout=timeout_s)
        self.dimension: int | None = None
        self.requests = 0

    @property
    def name(self) -> str:
        return OPENAI_PREFIX + self.model_name

    def _where(self) -> str:
        return self.base_url or "OpenAI's API"

    def _batch(self, texts: list[str]) -> np.ndarray:
        import openai

        extra = {"dimensions": self.dimensions} if self.dimensions else {}
        try:
            # "float" rather than the client's base64 default: every compatible server speaks it.
            reply = self.client.embeddings.create(model=self.model_name, input=texts, encoding_format="float",
                                                  **extra)
        except openai.AuthenticationError as exc:
            raise InputError(f"the embeddings endpoint {self._where()} refused the key ({exc.status_code}): check "
                             f"the variable named by --embeddings-api-key-env") from exc
        except openai.NotFoundError as exc:
            raise InputError(f"the embeddings endpoint {self._where()} has no model {self.model_name!r} or no "
                             f"/embeddings route ({exc.message}): check --embedder openai:MODEL and "
                             f"--embeddings-base-url (it ends in /v1)") from exc
        except openai.APIConnectionError as exc:
            raise InputError(f"could not reach the embeddings endpoint {self._where()} after the client's "
                             f"retries ({exc}): start the server or fix --embeddings-base-url") from exc
        except openai.APIStatusError as exc:
            raise InputError(f"the embeddings endpoint {self._where()} answered {exc.status_code} for "
                             f"{self.model_name!r} ({exc.message})") from exc
        self.requests += 1
        items = sorted(reply.data, key=lambda d: d.index)  # the API returns `index`; order is not promised
        if [d.index for d in items] != list(range(len(texts))):
            raise InputError(f"the embeddings endpoint {self._where()} returned {len(items)} vectors (indices "
                             f"{[d.index for d in items][:5]}...) for {len(texts)} texts")
        return np.asarray([d.embedding for d in items], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (N, dim) float32 array of unit-norm rows, `batch_size` texts per request."""
        texts = list(texts)
        parts = [self._batch(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        if not parts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        dims = {p.shape[1] for p in parts}
        if len(dims) != 1:
            raise InputError(f"the embeddings endpoint {self._where()} returned vectors of sizes {sorted(dims)}")
        vectors = np.concatenate(parts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        self.dimension = vectors.shape[1]
        return vectors

    def describe(self) -> dict:
        """Settings to record next to the pairs (the key is never recorded)."""
        return {"name": self.name, "model": self.model_name, "base_url": self.base_url or "https://api.openai.com/v1",
                "batch_size": self.batch_size, "dimension": self.dimension, "requests": self.requests}


def _default_model_cached() -> bool:
    """Whether DEFAULT_ST_MODEL is in the local Hugging Face cache; never touches the network."""
    import huggingface_hub

    # Looked up on the module at call time so tests can replace it; a non-str result is either
    # None (never fetched) or a sentinel meaning "known not to exist".
    return isinstance(huggingface_hub.try_to_load_from_cache(DEFAULT_ST_MODEL, "config.json"), str)


def _auto_embedder(batch_size: int, device: str | None, log: Callable[[str], None],
                   fallback: bool = True) -> TfidfEmbedder | SentenceTransformerEmbedder:
    """The default model when it can be used without a download, else TF-IDF with a logged reason
    (or, with `fallback=False`, an InputError giving that reason: a run that promised embedding
    pairing must not quietly pair by shared words)."""
    how = f"for embedding-based pairing pass --embedder MODEL (e.g. --embedder {DEFAULT_ST_MODEL})"
    if not fallback:
        def log(line: str) -> None:
            raise InputError(line.replace("pairing with TF-IDF: ", "--embedder auto cannot embed here: ", 1)
                             + " (this setting does not fall back to TF-IDF)")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        log(f"pairing with TF-IDF: sentence-transformers is not installed; `pip install sentence-transformers` "
            f"and {how}")
        return TfidfEmbedder()
    if not _default_model_cached():
        log(f"pairing with TF-IDF: {DEFAULT_ST_MODEL} is not in the local Hugging Face cache and 'auto' "
            f"never downloads; {how}")
        return TfidfEmbedder()
    try:
        return SentenceTransformerEmbedder(DEFAULT_ST_MODEL, batch_size, device, local_files_only=True)
    except InputError as exc:
        # A partial cache (config.json but no weights) lands here: 'auto' is best effort.
        log(f"pairing with TF-IDF: the cached {DEFAULT_ST_MODEL} did not load ({exc}); {how}")
        return TfidfEmbedder()


def _looks_like_path(spec: str) -> bool:
    """True for specs that can only mean a local directory (Hub ids are 'name' or 'org/name')."""
    return spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or (os.sep != "/" and os.sep in spec)


def make_embedder(spec: str = "auto", batch_size: int = 64, device: str | None = None,
                  log: Callable[[str], None] = _log_stderr, *, base_url: str | None = None,
                  api_key_env: str = DEFAULT_EMBEDDINGS_KEY_ENV, request_batch_size: int = 256,
                  fallback: bool = True) -> Embedder:
    """Build the embedder named by `spec`.

    * "tfidf": TfidfEmbedder.
    * "auto": SentenceTransformerEmbedder(DEFAULT_ST_MODEL) if sentence-transformers imports and
      the model is already cached locally; otherwise TfidfEmbedder, logging one line saying why
      (`fallback=False`: an InputError instead).
    * "openai:MODEL": OpenAIEmbedder against `base_url` (default OpenAI's API), the key from
      `$api_key_env`, `request_batch_size` texts per request.
    * anything else: a local model directory or a Hub id for SentenceTransformerEmbedder.
    """
    spec = (spec or "").strip()
    if not spec:
        raise InputError("the embedder spec is empty: pass 'auto', 'tfidf', 'openai:MODEL', a local model "
                         "directory or a Hub id")
    if spec.lower() == "tfidf":
        return TfidfEmbedder()
    if spec.lower() == "auto":
        return _auto_embedder(batch_size, device, log, fallback)
    if spec.startswith(OPENAI_PREFIX):
        return OpenAIEmbedder(spec[len(OPENAI_PREFIX):].strip(), base_url, api_key_env, request_batch_size)
    if _looks_like_path(spec) and not Path(spec).expanduser().is_dir():
        raise InputError(f"embedder model directory {spec!r} does not exist: pass an existing directory, "
                         f"a Hub id, or --embedder tfidf")
    model = str(Path(spec).expanduser()) if spec.startswith("~") else spec
    return SentenceTransformerEmbedder(model, batch_size, device)


@dataclass(frozen=True)
class Pair:
    """Problem `a` and its nearest neighbour `b` in the pool (indices into the pool)."""

    a: int
    b: int  # never equal to a
    similarity: float  # inner product of the normalised embeddings (cosine)
    mutual: bool  # b's nearest neighbour is a


def block_rows(n: int, memory_mb: float, cell_bytes: int = DENSE_CELL_BYTES) -> int:
    """Rows per similarity block so that a (rows, n) block costs at most `memory_mb` (at least 1 row)."""
    if not (isinstance(memory_mb, numbers.Real) and math.isfinite(memory_mb) and memory_mb > 0):
        raise InputError(f"memory_mb must be a positive number of megabytes, got {memory_mb!r}")
    return max(1, int(memory_mb * 2**20 // (cell_bytes * n)))


def _as_float32_rows(emb: Any) -> np.ndarray | scipy.sparse.csr_matrix:
    """`emb` as a 2-D float32 dense array or CSR matrix, after checking it is finite and normalised."""
    if scipy.sparse.issparse(emb):
        matrix = scipy.sparse.csr_matrix(emb, dtype=np.float32)
        values = matrix.data
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    else:
        matrix = np.ascontiguousarray(emb, dtype=np.float32)
        if matrix.ndim != 2:
            raise InputError(f"embeddings must be a 2-D (problems, dimensions) array, got shape {matrix.shape}")
        values = matrix
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    if not np.isfinite(values).all():
        raise InputError("embeddings contain NaN or infinity: check the embedder's output")
    # A zero row is allowed (a text with nothing to embed); any other row must be a unit vector.
    bad = np.flatnonzero((norms > NORM_TOLERANCE) & (np.abs(norms - 1.0) > NORM_TOLERANCE))
    if bad.size:
        raise InputError(f"embedding row {bad[0]} has norm {norms[bad[0]]:.4f}, not 1: L2-normalise the rows "
                         f"before pairing ({bad.size} rows are off)")
    return matrix


def _similarity_block(matrix: np.ndarray | scipy.sparse.csr_matrix, transposed: Any, start: int, stop: int,
                      buffer: np.ndarray | None) -> np.ndarray:
    """Dense (stop - start, N) float32 similarities of rows start..stop against every row."""
    if buffer is None:
        return (matrix[start:stop] @ transposed).toarray()
    out = buffer[: stop - start]
    # Reusing one buffer keeps a single block alive instead of one per iteration awaiting GC.
    np.matmul(matrix[start:stop], transposed, out=out)
    return out


def nearest_neighbours(emb: Any, memory_mb: float = 256.0, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Index and similarity of each row's most similar other row.

    `emb` is a dense (N, d) array or a scipy sparse (N, d) matrix whose rows are L2-normalised
    (all-zero rows are allowed and get some neighbour with similarity 0). Similarities are
    computed in float32, `memory_mb` megabytes of rows at a time, so the N x N matrix is never
    built. A row is never its own neighbour; ties go to the lowest index.
    Returns (idx int64[N], sim float32[N]).
    """
    matrix = _as_float32_rows(emb)
    n = matrix.shape[0]
    if n < 2:
        raise InputError(f"pairing needs at least 2 problems, got {n}")
    sparse = scipy.sparse.issparse(matrix)
    rows = min(n, block_rows(n, memory_mb, SPARSE_CELL_BYTES if sparse else DENSE_CELL_BYTES))
    # CSR @ CSR multiplies without converting the right operand on every block.
    transposed = matrix.T.tocsr() if sparse else matrix.T
    buffer = None if sparse else np.empty((rows, n), dtype=np.float32)

    idx = np.empty(n, dtype=np.int64)
    sim = np.empty(n, dtype=np.float32)
    from tqdm.auto import tqdm

    starts = range(0, n, rows)
    for start in tqdm(starts, desc="nearest neighbours", unit="block", disable=not progress, file=sys.stderr,
                      dynamic_ncols=True):
        stop = min(n, start + rows)
        block = _similarity_block(matrix, transposed, start, stop, buffer)
        local = np.arange(stop - start)
        block[local, start + local] = -np.inf  # a problem is not its own partner
        best = np.argmax(block, axis=1)  # first maximum: ties go to the lowest index
        idx[start:stop] = best
        sim[start:stop] = block[local, best]
    return idx, sim


def pair_problems(texts: Sequence[str], embedder: Embedder, memory_mb: float = 256.0,
                  progress: bool = False) -> list[Pair]:
    """Embed `texts` and pair each with its nearest other text; one Pair per text, in order.

    The pool is assumed free of duplicates (a duplicate would pair with its copy); deduplicate first.
    """
    if len(texts) == 0:
        raise InputError("the pool is empty: pairing needs at least 2 problems")
    if len(texts) < 2:
        raise InputError(f"pairing needs at least 2 problems, got {len(texts)}: add problems to the pool")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"problem {i} is a {type(text).__name__}, not a string: pass the problem texts")
    emb = embedder.embed(texts)
    if emb.shape[0] != len(texts):
        raise InputError(f"embedder {embedder.name} returned {emb.shape[0]} rows for {len(texts)} texts")
    idx, sim = nearest_neighbours(emb, memory_mb=memory_mb, progress=progress)
    mutual = idx[idx] == np.arange(len(texts))
    return [Pair(a=i, b=int(idx[i]), similarity=float(sim[i]), mutual=bool(mutual[i])) for i in range(len(texts))]
