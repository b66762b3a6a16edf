"""The text stage on real annotation sentences: tokens, vocabulary, word vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hscnet.common.errors import InputError
from hscnet.text import PAD, UNK, Vocabulary, load_word_vectors, parse_paragraph, tokenize


def test_string_paragraph_is_split_into_sentences_of_lowercase_words():
    parsed = parse_paragraph("A man rides a BMX bike across the field. He falls, then gets up!")
    assert parsed.sentences == (
        ("a", "man", "rides", "a", "bmx", "bike", "across", "the", "field"),
        ("he", "falls", "then", "gets", "up"),
    )
    assert parsed.texts[0] == "A man rides a BMX bike across the field."
    assert parsed.words[9:11] == ["he", "falls"]
    assert parsed.word_sentence == [0] * 9 + [1] * 5
    assert parsed.word_position == [*range(9), *range(5)]


def test_annotation_sentences_are_never_resplit(shared_data):
    tacos = json.loads((shared_data / "tacos" / "train.json").read_text())
    two_in_one = next(s for entry in tacos.values() for s in entry["sentences"] if ". " in s.strip()[:-1])
    parsed = parse_paragraph([two_in_one, "He washes the knife."])
    assert len(parsed.sentences) == 2
    assert parsed.sentences[0] == tuple(tokenize(two_in_one))
    assert "." not in parsed.sentences[0]


def test_real_activitynet_sentences_all_have_words(shared_data):
    data = json.loads((shared_data / "activitynet" / "val_1.json").read_text())
    sentences = [s for entry in list(data.values())[:500] for s in entry["sentences"]]
    parsed = parse_paragraph(sentences)
    assert len(parsed.sentences) == len(sentences)
    assert all(words and all(w == w.lower() and w.strip() for w in words) for words in parsed.sentences)
    # About two thirds of ActivityNet sentences start with a space: it never becomes a token.
    assert sum(s.startswith(" ") for s in sentences) > 0


@pytest.mark.parametrize("paragraph", ["", "   \n", [], "... !!", ["A man walks.", " ?! "]])
def test_empty_paragraph_or_sentence_is_a_clear_error(paragraph):
    with pytest.raises(InputError, match=r"empty paragraph|has no words"):
        parse_paragraph(paragraph)


def test_vocabulary_counts_round_trips_and_encodes_unknown_words(tmp_path):
    vocab = Vocabulary.build([["a", "man", "a"], ["a", "dog", "man"], ["cat"]], min_count=2)
    assert vocab.words == [PAD, UNK, "a", "man"]
    assert vocab.encode(["a", "dog", "man"]) == [2, 1, 3]
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").words == vocab.words
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match=r"broken\.json"):
        Vocabulary.load(tmp_path / "broken.json")


def test_packaged_glove_gives_the_real_vectors_and_reports_missing_words():
    vocab = Vocabulary([PAD, UNK, "the", "kiwis", "qwzxplk"])
    vectors = load_word_vectors(vocab)
    assert vectors.matrix.shape == (5, 50)
    # The first glove.6B.50d vector is "the": 0.418 0.24968 -0.41242 0.1217 0.34527 ...
    np.testing.assert_allclose(vectors.matrix[2, :5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527], rtol=1e-5)
    assert vectors.missing == ["qwzxplk"]
    assert not vectors.matrix[0].any()  # padding is the zero vector
    assert np.abs(vectors.matrix[4]).sum() > 0  # a missing word still gets a (random) vector
    assert "1 of 3 vocabulary words have no vector" in vectors.report()


def test_glove_text_file_is_streamed_handles_spaces_and_case_and_is_cached(tmp_path):
    glove = tmp_path / "glove.tiny.3d.txt"
    glove.write_text(
        "the 0.1 0.2 0.3\n"
        "at name@domain.com 9 9 9\n"  # 840B has words with spaces: never a vocabulary word
        "at 1 2 3\n"
        "Kiwi 4 5 6\n"  # cased only: used for "kiwi"
        "man 7 8 9\n"
        "Man 0 0 0\n"  # the exact lower-case entry wins
    )
    vocab = Vocabulary([PAD, UNK, "the", "at", "kiwi", "man", "unseen"])
    first = load_word_vectors(vocab, glove, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(first.matrix[2:6], [[0.1, 0.2, 0.3], [1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert first.missing == ["unseen"] and not first.from_cache
    second = load_word_vectors(vocab, glove, cache_dir=tmp_path / "cache")
    assert second.from_cache
    np.testing.assert_array_equal(second.matrix, first.matrix)
    assert second.missing == ["unseen"]
    with pytest.raises(InputError, match="GloVe file not found"):
        load_word_vectors(vocab, tmp_path / "absent.txt")


def test_every_caption_word_glove_knows_is_in_the_vocabulary(shared_data):
    from hscnet.annotations import read_annotations
    from hscnet.data import tokenize_paragraphs
    from hscnet.text import vocabulary_with_vectors

    train, _ = read_annotations(shared_data / "activitynet" / "train.json")
    test, _ = read_annotations(shared_data / "activitynet" / "val_2_paragraphs.npy")
    train_words = [s for p in tokenize_paragraphs(train) for s in p]
    test_words = [s for p in tokenize_paragraphs(test) for s in p]
    only_in_test = {w for s in test_words for w in s} - {w for s in train_words for w in s}
    vocab, vectors = vocabulary_with_vectors(train_words, test_words)
    borrowed = [w for w in vocab.words if w in only_in_test]
    assert len(only_in_test) == 1583 and len(borrowed) == 1342  # the rest GloVe lacks: unknown
    packaged = load_word_vectors(Vocabulary([PAD, UNK, *borrowed[:5]]))
    np.testing.assert_array_equal(vectors.matrix[vocab.encode(borrowed[:5])], packaged.matrix[2:])
    assert not set(vectors.missing) & only_in_test  # random vectors only for training words GloVe lacks
    lacking = sorted(only_in_test - set(borrowed))
    assert vocab.encode(lacking[:3]) == [1, 1, 1]
