// matrix.h: the one dense matrix type of the attack library: row-major
// doubles, rows x cols. Attack inputs (feature vectors, one per example) and
// LiRA's phi table (one row per model) are Matrices.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mmia {

struct Matrix {
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<double> values;  // rows * cols, row r at values[r * cols]

    Matrix() = default;
    Matrix(int64_t r, int64_t c, double fill = 0.0) : rows(r), cols(c) {
        if (r < 0 || c < 0) throw std::invalid_argument("Matrix: negative dimension");
        values.assign(size_t(r * c), fill);
    }
    double* row(int64_t r) { return values.data() + r * cols; }
    const double* row(int64_t r) const { return values.data() + r * cols; }
    double& at(int64_t r, int64_t c) { return values[size_t(r * cols + c)]; }
    double at(int64_t r, int64_t c) const { return values[size_t(r * cols + c)]; }
};

}  // namespace mmia
