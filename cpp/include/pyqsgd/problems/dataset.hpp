// A design matrix stored once (dense row-major or CSR, float32) and shared by every worker
// by sample index: workers hold index arrays, never copies of rows.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pyqsgd {

class Dataset {
   public:
    // Dense row-major n x d.
    static Dataset dense(const float* a, uint64_t n, uint64_t d);
    // CSR with 0-based column indices (validated: monotone indptr, columns < d).
    static Dataset csr(const int64_t* indptr, const int32_t* indices, const float* data, uint64_t n, uint64_t d);

    uint64_t n() const { return n_; }
    uint64_t d() const { return d_; }
    bool sparse() const { return sparse_; }

    // a_i^T x
    double dot(uint64_t i, const double* x) const {
        double s = 0.0;
        if (sparse_) {
            for (int64_t p = indptr_[i]; p < indptr_[i + 1]; ++p) s += double(data_[size_t(p)]) * x[indices_[size_t(p)]];
        } else {
            const float* r = dense_.data() + i * d_;
            for (uint64_t j = 0; j < d_; ++j) s += double(r[j]) * x[j];
        }
        return s;
    }
    // g += a * a_i
    void axpy(uint64_t i, double a, double* g) const {
        if (sparse_) {
            for (int64_t p = indptr_[i]; p < indptr_[i + 1]; ++p) g[indices_[size_t(p)]] += a * double(data_[size_t(p)]);
        } else {
            const float* r = dense_.data() + i * d_;
            for (uint64_t j = 0; j < d_; ++j) g[j] += a * double(r[j]);
        }
    }
    // ||a_i||^2
    double row_norm_sq(uint64_t i) const;
    // Largest eigenvalue of (1/|S|) sum_{i in S} a_i a_i^T; S = all rows when idx is null.
    // Exact (dense symmetric eigensolver, rounded up) for d <= kExactEigMaxDim, so it is a safe
    // smoothness constant; above that a power-iteration estimate (from below; fixed budget).
    static constexpr uint64_t kExactEigMaxDim = 1024;
    double max_eig_mean_outer(const int64_t* idx, uint64_t count, int iters = 100) const;

   private:
    uint64_t n_ = 0, d_ = 0;
    bool sparse_ = false;
    std::vector<float> dense_;
    std::vector<int64_t> indptr_;
    std::vector<int32_t> indices_;
    std::vector<float> data_;
};

}  // namespace pyqsgd
