"""MathFusion pairing: blocked nearest neighbours, TF-IDF and sentence-transformers embedders, 'auto'.

The neighbour search is checked against a brute-force N x N computation done here, on dense and
sparse input and under budgets that force one-row and seven-row blocks. The sentence-transformers
path uses the repo's tiny random-weight model, so nothing here needs the Hub.
"""
from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
import scipy.sparse

from reasoning.types import InputError
from synthesis import pairing
from synthesis.pairing import (
    Pair,
    SentenceTransformerEmbedder,
    TfidfEmbedder,
    block_rows,
    make_embedder,
    nearest_neighbours,
    pair_problems,
)

# Four topical twins, then a ninth problem about trains that is nobody's nearest neighbour.
POOL = [
    "A train travels at a speed of 60 miles per hour for 3 hours. How far does the train travel?",
    "A train moves at a constant speed of 80 miles per hour. How many hours does the train need to travel 240 miles?",
    "Sara puts 12 apples in each basket. She fills 5 baskets with apples. How many apples are in the baskets?",
    "There are 48 apples shared equally among 6 baskets. How many apples go in each basket?",
    "A rectangle has a length of 9 cm and a width of 4 cm. What is the area of the rectangle?",
    "The area of a rectangle is 56 square cm and its width is 7 cm. What is the length of the rectangle?",
    "Tom saves 15 dollars every week in his piggy bank. How many dollars does Tom save in 8 weeks?",
    "After 6 weeks of saving the same amount each week, Tom has 90 dollars. How many dollars does he save per week?",
    "A slow train leaves the station at noon.",
]
TWIN = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _brute_force(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference answer: the whole float64 similarity matrix, self masked, first maximum."""
    sims = dense.astype(np.float64) @ dense.astype(np.float64).T
    np.fill_diagonal(sims, -np.inf)
    idx = np.argmax(sims, axis=1)
    return idx, sims[np.arange(len(dense)), idx]


def _record_blocks(monkeypatch) -> list[tuple[int, int]]:
    """Spy on the blocks nearest_neighbours computes; returns the list their shapes go into."""
    shapes: list[tuple[int, int]] = []
    real = pairing._similarity_block

    def spy(*args, **kwargs):
        block = real(*args, **kwargs)
        shapes.append(block.shape)
        return block

    monkeypatch.setattr(pairing, "_similarity_block", spy)
    return shapes


class FixedEmbedder:
    """Returns preset vectors, to build an exact neighbour geometry."""

    name = "fixed"

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def embed(self, texts):
        return self.vectors[: len(texts)]

    def describe(self) -> dict:
        return {"name": self.name}


# Budgets (MB) for N=500 and the block rows they must give: 1 row, 7 rows, everything at once.
N, D = 500, 32
BUDGETS = [(1e-9, 1), (7 * 4 * N / 2**20, 7), (256.0, N)]


@pytest.mark.parametrize(("memory_mb", "rows"), BUDGETS)
def test_blocked_dense_neighbours_equal_brute_force(monkeypatch, memory_mb, rows):
    emb = _unit_rows(np.random.default_rng(0).standard_normal((N, D))).astype(np.float32)
    shapes = _record_blocks(monkeypatch)
    idx, sim = nearest_neighbours(emb, memory_mb=memory_mb)
    want_idx, want_sim = _brute_force(emb)

    assert max(r for r, _ in shapes) == rows and sum(r for r, _ in shapes) == N
    assert idx.dtype == np.int64 and sim.dtype == np.float32
    assert not np.any(idx == np.arange(N))
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(sim, want_sim, atol=1e-5)


@pytest.mark.parametrize(("memory_mb", "rows"), [(1e-9, 1), (7 * 16 * N / 2**20, 7), (256.0, N)])
def test_blocked_sparse_neighbours_equal_dense_brute_force(monkeypatch, memory_mb, rows):
    raw = scipy.sparse.random(N, 200, density=0.05, format="csr", random_state=1, dtype=np.float64)
    dense = _unit_rows(raw.toarray())
    shapes = _record_blocks(monkeypatch)
    idx, sim = nearest_neighbours(scipy.sparse.csr_matrix(dense), memory_mb=memory_mb)
    want_idx, want_sim = _brute_force(dense)

    assert max(r for r, _ in shapes) == rows and sum(r for r, _ in shapes) == N
    assert not np.any(idx == np.arange(N))
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(sim, want_sim, atol=1e-5)


def test_block_rows_fit_the_budget():
    assert block_rows(500, 1e-9) == 1
    assert block_rows(500, 7 * 4 * 500 / 2**20) == 7
    assert block_rows(20_000, 16) == 16 * 2**20 // (4 * 20_000)
    assert block_rows(500, 7 * 16 * 500 / 2**20, cell_bytes=16) == 7
    for bad in (0, -1.0, float("nan"), float("inf"), "16"):
        with pytest.raises(InputError, match="memory_mb"):
            block_rows(10, bad)


def test_peak_memory_stays_within_the_block_budget():
    n, budget_mb = 20_000, 16
    emb = _unit_rows(np.random.default_rng(2).standard_normal((n, 64))).astype(np.float32)
    tracemalloc.start()
    try:
        idx, _ = nearest_neighbours(emb, memory_mb=budget_mb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block_bytes = block_rows(n, budget_mb) * n * 4
    # The lower bound shows tracemalloc sees numpy's buffers; the full matrix would be 1.6 GB.
    assert block_bytes <= peak < 64 * 2**20 < n * n * 4
    assert not np.any(idx == np.arange(n))


def test_zero_rows_still_get_a_neighbour():
    emb = np.zeros((4, 3), dtype=np.float32)
    emb[2] = [1.0, 0.0, 0.0]
    idx, sim = nearest_neighbours(emb)
    np.testing.assert_array_equal(idx, [1, 0, 0, 0])  # ties go to the lowest other index
    np.testing.assert_array_equal(sim, [0, 0, 0, 0])


def test_tfidf_pairs_each_problem_with_its_topical_twin():
    pairs = pair_problems(POOL, TfidfEmbedder())

    assert [p.a for p in pairs] == list(range(len(POOL)))
    assert {p.a: p.b for p in pairs if p.a in TWIN} == TWIN
    assert all(p.mutual for p in pairs if p.a in TWIN)
    # The stray train problem points at a train problem whose own partner is its twin.
    assert pairs[8].b in (0, 1) and not pairs[8].mutual
    assert all(0 < p.similarity <= 1 + 1e-6 for p in pairs)


def test_pairs_are_directional():
    # A at 0 deg, B at 30 deg, C at 50 deg: A's nearest is B, but B's nearest is C (20 deg away).
    angles = np.radians([0.0, 30.0, 50.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    pairs = pair_problems(["A", "B", "C"], FixedEmbedder(vectors))

    assert pairs[0] == Pair(a=0, b=1, similarity=pytest.approx(np.cos(np.radians(30))), mutual=False)
    assert (pairs[1].b, pairs[1].mutual) == (2, True)
    assert (pairs[2].b, pairs[2].mutual) == (1, True)


def test_tfidf_embeddings_are_unit_rows_and_describe_the_vocabulary():
    embedder = TfidfEmbedder()
    emb = embedder.embed(POOL[:4] + [""])
    norms = np.sqrt(np.asarray(emb.multiply(emb).sum(axis=1)).ravel())

    assert scipy.sparse.issparse(emb) and emb.shape[0] == 5
    np.testing.assert_allclose(norms, [1, 1, 1, 1, 0], atol=1e-6)
    assert embedder.describe()["vocabulary_size"] == emb.shape[1]


def test_tfidf_of_blank_texts_says_what_is_wrong():
    with pytest.raises(InputError, match="no words"):
        TfidfEmbedder().embed(["", "  ", "?"])


def test_empty_pool_is_an_input_error():
    with pytest.raises(InputError, match="the pool is empty"):
        pair_problems([], TfidfEmbedder())


def test_pool_of_one_is_an_input_error():
    with pytest.raises(InputError, match="at least 2 problems"):
        pair_problems(["one lonely problem"], TfidfEmbedder())
    with pytest.raises(InputError, match="at least 2 problems, got 1"):
        nearest_neighbours(np.ones((1, 4), dtype=np.float32) / 2)


def test_unnormalised_or_non_finite_embeddings_are_input_errors():
    with pytest.raises(InputError, match="L2-normalise"):
        nearest_neighbours(np.full((3, 2), 2.0))
    with pytest.raises(InputError, match="NaN"):
        nearest_neighbours(np.array([[1.0, 0.0], [np.nan, 0.0]]))
    with pytest.raises(InputError, match="not a string"):
        pair_problems(["a problem", 7], TfidfEmbedder())


# --- sentence-transformers with a real (tiny, random-weight) local model ---------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from reasoning.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("pairing") / "m")


def test_local_sentence_transformer_gives_unit_float32_rows_and_valid_pairs(tiny_model_dir):
    embedder = make_embedder(str(tiny_model_dir), batch_size=4, device="cpu")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.name == f"sentence-transformers:{tiny_model_dir}"

    emb = embedder.embed(POOL)
    assert emb.dtype == np.float32 and emb.shape[0] == len(POOL)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    pairs = pair_problems(POOL, embedder)
    want_idx, want_sim = _brute_force(emb)
    assert [(p.a, p.b) for p in pairs] == list(enumerate(want_idx.tolist()))
    np.testing.assert_allclose([p.similarity for p in pairs], want_sim, atol=1e-5)
    assert all(p.mutual == (pairs[p.b].b == p.a) for p in pairs)
    assert embedder.describe()["dimension"] == emb.shape[1]


def test_auto_uses_the_default_model_when_it_is_cached(monkeypatch, tiny_model_dir):
    # Stand the tiny model in for the default one, and report it as cached.
    monkeypatch.setattr(pairing, "DEFAULT_ST_MODEL", str(tiny_model_dir))
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: str(tiny_model_dir / "config.json"))
    logged: list[str] = []
    embedder = make_embedder("auto", device="cpu", log=logged.append)

    assert isinstance(embedder, SentenceTransformerEmbedder) and logged == []


# --- 'auto' fallback and missing sentence-transformers ---------------------------------------------


def test_auto_falls_back_to_tfidf_when_the_default_model_is_not_cached(monkeypatch):
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    logged: list[str] = []
    embedder = make_embedder("auto", log=logged.append)

    assert isinstance(embedder, TfidfEmbedder)
    assert len(logged) == 1 and "not in the local Hugging Face cache" in logged[0] and "--embedder" in logged[0]


def test_auto_falls_back_to_tfidf_without_sentence_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    logged: list[str] = []
    embedder = make_embedder("auto", log=logged.append)

    assert isinstance(embedder, TfidfEmbedder)
    assert len(logged) == 1 and "not installed" in logged[0] and "pip install sentence-transformers" in logged[0]


def test_named_model_without_sentence_transformers_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(InputError, match="--embedder tfidf"):
        make_embedder("some/missing-model")


def test_model_that_cannot_be_loaded_is_an_input_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # conftest sets it too; never wait on the network here
    with pytest.raises(InputError, match="(?s)could not load .*--embedder tfidf"):
        make_embedder("some/missing-model")
    with pytest.raises(InputError, match="does not exist"):
        make_embedder("./no/such/model-dir")


def test_tfidf_spec_and_empty_spec():
    assert isinstance(make_embedder("tfidf"), TfidfEmbedder)
    with pytest.raises(InputError, match="empty"):
        make_embedder("  ")


def test_auto_without_fallback_refuses_instead_of_pairing_by_words(monkeypatch):
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(InputError, match="(?s)cannot embed here.*not in the local Hugging Face cache.*does not fall"):
        make_embedder("auto", log=lambda line: pytest.fail(f"logged {line!r} instead of refusing"), fallback=False)


# --- OpenAI-compatible embeddings endpoint -----------------------------------------------------------

# Vectors that pair the problems against their wording: each text's neighbour by these vectors
# is a problem about another topic, so pairs that follow them cannot come from shared words.
# Rows are deliberately not unit length: the embedder must normalise them.
API_VECTORS = np.array([[3.0, 0.1, 0.0], [0.0, 2.0, 0.1], [0.1, 0.0, 5.0], [0.2, 4.0, 0.0], [4.0, 0.0, 0.3]])
API_TEXTS = [POOL[0], POOL[2], POOL[4], POOL[6], POOL[8]]


def test_openai_embedder_batches_requests_and_pairing_follows_the_returned_vectors():
    from tests.fake_pooling_server import FakePoolingServer

    with FakePoolingServer(dict(zip(API_TEXTS, API_VECTORS.tolist())), shuffle=True) as server:
        embedder = make_embedder("openai:fake-embed", base_url=server.url, request_batch_size=2)
        pairs = pair_problems(API_TEXTS, embedder)
    bodies = [c["body"] for c in server.calls]
    assert [c["path"] for c in server.calls] == ["/v1/embeddings"] * 3
    assert [b["input"] for b in bodies] == [API_TEXTS[0:2], API_TEXTS[2:4], API_TEXTS[4:5]]
    assert all(b["model"] == "fake-embed" and b["encoding_format"] == "float" for b in bodies)
    want_idx, want_sim = _brute_force(_unit_rows(API_VECTORS))
    assert [p.b for p in pairs] == want_idx.tolist() == [4, 3, 4, 1, 0]
    assert np.allclose([p.similarity for p in pairs], want_sim, atol=1e-6)
    assert embedder.name == "openai:fake-embed"
    assert embedder.describe()["dimension"] == 3 and embedder.describe()["requests"] == 3


def test_openai_embedder_retries_a_server_error_and_sends_the_key_from_the_named_variable(monkeypatch):
    from tests.fake_pooling_server import FakePoolingServer

    monkeypatch.setenv("MY_EMBED_KEY", "sk-test-123")
    with FakePoolingServer(dict(zip(API_TEXTS, API_VECTORS.tolist())), fail_first=[500], api_key="sk-test-123") \
            as server:
        vectors = make_embedder("openai:fake-embed", base_url=server.url, api_key_env="MY_EMBED_KEY").embed(
            API_TEXTS[:2])
    assert len(server.calls) == 2, "the 500 is retried once, then the batch succeeds"
    assert all(c["authorization"] == "Bearer sk-test-123" for c in server.calls)
    assert np.allclose(vectors, _unit_rows(API_VECTORS[:2]), atol=1e-6)
    assert "sk-test-123" not in repr(make_embedder("openai:x", base_url=server.url,
                                                   api_key_env="MY_EMBED_KEY").describe())


def test_openai_embedder_errors_name_the_endpoint_and_the_fix(monkeypatch):
    from synthesis.pairing import OpenAIEmbedder
    from tests.fake_pooling_server import FakePoolingServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match=r"needs a key: set \$OPENAI_API_KEY"):
        make_embedder("openai:text-embedding-3-large")
    with pytest.raises(InputError, match="needs a model name"):
        make_embedder("openai:")
    with FakePoolingServer({}, fail_first=[503] * 3) as server:
        with pytest.raises(InputError, match=f"{server.url}.* answered 503"):
            OpenAIEmbedder("fake-embed", server.url, max_retries=1).embed(["a"])
    assert len(server.calls) == 2
    with FakePoolingServer({}, api_key="right") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
        with pytest.raises(InputError, match="refused the key"):
            OpenAIEmbedder("fake-embed", server.url, max_retries=0).embed(["a"])
        gone = server.url
    with pytest.raises(InputError, match=f"could not reach the embeddings endpoint {gone}"):
        OpenAIEmbedder("fake-embed", gone, max_retries=0, timeout_s=5).embed(["a"])
