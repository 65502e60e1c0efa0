#!/usr/bin/env bash
# bpe_oracle.sh: the tokenizer's oracle check on every corpus (several MB),
# not just `make test`'s slice: tests/test_bpe.cpp's "real text" case with
# BPE_ORACLE_FULL=1 on data/corpora/{prose,code,legal,dictionary,man}
# (`make corpora` builds them). Prints the texts, bytes and encode
# throughput of engine/bpe.h and of the npm oracles (one thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/tests/test_bpe >/dev/null
BPE_ORACLE_FULL=1 ./build/tests/test_bpe -tc='real text*' -s 2>&1 | grep -E 'MESSAGE|texts,|test cases|ERROR|ours|oracle' 
