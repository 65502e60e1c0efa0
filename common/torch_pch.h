// torch_pch.h: LibTorch's umbrella header, precompiled. Every translation
// unit that uses LibTorch includes this first, before anything else (GCC
// uses a precompiled header only as a file's first include). The Makefile
// compiles it once per build directory ($(BUILD)/pch/common/torch_pch.h.gch,
// with the same flags as the files that use it) and puts $(BUILD)/pch on the
// include path ahead of the sources; parsing <torch/torch.h> is about 16 s
// of each such file's compile, so this cuts a clean build by minutes. Where
// no .gch is found (another build system) this is a plain include. No
// #pragma once: the header is compiled as a main file (GCC warns), and
// <torch/torch.h> guards itself.
#include <torch/torch.h>
