#!/usr/bin/python3
"""Writes tests/fixtures/nltk_bleu.jsonl: fixed cases of NLTK's
TreebankWordTokenizer and sentence_bleu(method1), the oracle that
tests/test_lm_scores.cpp checks attack/lm_scores.cpp against.

Needs Debian's python3-nltk (3.8): `apt-get install python3-nltk`, then
`/usr/bin/python3 scripts/oracles/nltk_bleu.py`. The fixture is committed, so
the tests need neither. Each line: {"ref", "hyp", "ref_tokens", "hyp_tokens",
"bleu", "seed003_bleu"} where seed003_bleu follows seed 003's recipe on the
first 100 characters (preprocess_text, then the Treebank tokenizer).
"""
import json
import random

import nltk
from nltk.tokenize import TreebankWordTokenizer
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

tok = TreebankWordTokenizer()
smooth = SmoothingFunction().method1


def preprocess(text):
    return " ".join(line.strip() for line in text.split("\n") if line.strip())


HAND = [
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on the mat", "the cat sat on a mat"),
    ("the cat sat on the mat", "mat the on sat cat the"),
    ("the cat sat on the mat", "dog"),
    ("the cat sat on the mat", ""),
    ("the cat", "the cat sat on the mat and more words"),
    ("a b c d e", "a b c d f"),
    ("Hello, world! It's a test -- \"quoted\" (parens) 3,000 e.g. end.", "Hello, world! It's a test."),
    ("They'll save and invest more. I cannot go; we're gonna win!", "They'll save, and invest more? I can't."),
    ("Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.", "Good muffins cost $3.88 in York."),
    ("def f(x):\n    return x[0] + {'a': 1}['a']  # comment", "def f(x): return x[1] + 2"),
    ("  leading and trailing  \n\n  blank lines \n", "leading and trailing blank lines"),
    ("'Tis the season, wanna dance? d'ye gimme lemme gotta", "'Twas the night; wanna sing? More'n enough..."),
    ("E-mail me at a@b.com & pay 50% #1 <tag> [x] {y}", "E-mail me at a@b.com & pay 50 % #1"),
    ("My social security number is 0 4 9 1 7 3 2 8 5", "My social security number is 0 4 9 1 7 3 2 8 6"),
    ("''double'' and \"quotes\" and 'single' ones'", "``double'' and quotes"),
]

WORDS = ["the", "a", "cat", "dog", "It's", "don't", "cannot", "(x)", "[1]", "3,000", "1.5", "e.g.", "--", "...",
         "end.", "\"q\"", "'s", "?", "!", ",", ";", ":", "$5", "50%", "#", "&", "{", "}", "<b>", "Mr.", "ok", "is"]

rng = random.Random(1234)
cases = list(HAND)
for _ in range(200):
    ref = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 25)))
    hyp_words = ref.split()
    for _ in range(rng.randint(0, 6)):  # a few edits so BLEU spans (0, 1]
        op = rng.randint(0, 2)
        if op == 0 and hyp_words:
            hyp_words[rng.randrange(len(hyp_words))] = rng.choice(WORDS)
        elif op == 1 and hyp_words:
            del hyp_words[rng.randrange(len(hyp_words))]
        else:
            hyp_words.insert(rng.randint(0, len(hyp_words)), rng.choice(WORDS))
    cases.append((ref, " ".join(hyp_words)))

with open("tests/fixtures/nltk_bleu.jsonl", "w") as f:
    for ref, hyp in cases:
        rt, ht = tok.tokenize(preprocess(ref)), tok.tokenize(preprocess(hyp))
        s3 = sentence_bleu([tok.tokenize(preprocess(ref[:100]))], tok.tokenize(preprocess(hyp[:100])),
                           smoothing_function=smooth)
        f.write(json.dumps({"ref": ref, "hyp": hyp, "ref_tokens": rt, "hyp_tokens": ht,
                            "bleu": float(sentence_bleu([rt], ht, smoothing_function=smooth)),
                            "seed003_bleu": float(s3), "nltk": nltk.__version__}) + "\n")
print(f"wrote {len(cases)} cases (nltk {nltk.__version__})")
