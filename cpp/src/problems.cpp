#include <algorithm>
#include <cmath>
#include <cstring>

#include <Eigen/Dense>

#include "pyqsgd/compressor.hpp"
#include "pyqsgd/parallel.hpp"
#include "pyqsgd/problems/problem.hpp"

namespace pyqsgd {

// ---- Dataset --------------------------------------------------------------------------------

Dataset Dataset::dense(const float* a, uint64_t n, uint64_t d) {
    if (n == 0 || d == 0) fail("A must have at least one row and one column");
    Dataset s;
    s.n_ = n;
    s.d_ = d;
    s.dense_.assign(a, a + n * d);
    for (float v : s.dense_)
        if (!std::isfinite(v)) fail("A contains NaN or Inf");
    return s;
}

Dataset Dataset::csr(const int64_t* indptr, const int32_t* indices, const float* data, uint64_t n, uint64_t d) {
    if (n == 0 || d == 0) fail("A must have at least one row and one column");
    Dataset s;
    s.n_ = n;
    s.d_ = d;
    s.sparse_ = true;
    s.indptr_.assign(indptr, indptr + n + 1);
    if (s.indptr_[0] != 0) fail("A: CSR indptr must start at 0");
    for (uint64_t i = 0; i < n; ++i)
        if (s.indptr_[i + 1] < s.indptr_[i]) fail("A: CSR indptr must be non-decreasing");
    const uint64_t nnz = uint64_t(s.indptr_[n]);
    s.indices_.assign(indices, indices + nnz);
    s.data_.assign(data, data + nnz);
    for (uint64_t p = 0; p < nnz; ++p) {
        if (s.indices_[p] < 0 || uint64_t(s.indices_[p]) >= d) fail("A: CSR column index out of range");
        if (!std::isfinite(s.data_[p])) fail("A contains NaN or Inf");
    }
    return s;
}

double Dataset::row_norm_sq(uint64_t i) const {
    double s = 0.0;
    if (sparse_) {
        for (int64_t p = indptr_[i]; p < indptr_[i + 1]; ++p) s += double(data_[size_t(p)]) * data_[size_t(p)];
    } else {
        const float* r = dense_.data() + i * d_;
        for (uint64_t j = 0; j < d_; ++j) s += double(r[j]) * r[j];
    }
    return s;
}

double Dataset::max_eig_mean_outer(const int64_t* idx, uint64_t count, int iters) const {
    if (!idx) count = n_;
    if (count == 0) return 0.0;
    if (d_ <= kExactEigMaxDim) {
        // Exact: form M = (1/|S|) A_S^T A_S (lower triangle, which is all the solver reads) and solve the
        // symmetric eigenproblem. Power iteration only approaches lambda_max from below (like
        // (lambda_2/lambda_1)^k), so with clustered top eigenvalues it returned a constant
        // below the true L and a step of 1/L was not safe.
        Eigen::MatrixXd M = Eigen::MatrixXd::Zero(Eigen::Index(d_), Eigen::Index(d_));
        std::vector<double> row(d_, 0.0);
        for (uint64_t k = 0; k < count; ++k) {
            const uint64_t i = idx ? uint64_t(idx[k]) : k;
            if (sparse_) {
                for (int64_t p = indptr_[i]; p < indptr_[i + 1]; ++p)
                    for (int64_t q = p; q < indptr_[i + 1]; ++q) {
                        const int64_t a = indices_[size_t(p)], b = indices_[size_t(q)];
                        M(std::max(a, b), std::min(a, b)) += double(data_[size_t(p)]) * double(data_[size_t(q)]);
                    }
            } else {
                const float* r = dense_.data() + i * d_;
                for (uint64_t j = 0; j < d_; ++j) row[j] = double(r[j]);
                for (uint64_t a = 0; a < d_; ++a) {
                    if (row[a] == 0.0) continue;
                    for (uint64_t b = a; b < d_; ++b) M(Eigen::Index(b), Eigen::Index(a)) += row[a] * row[b];
                }
            }
        }
        M /= double(count);
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(M, Eigen::EigenvaluesOnly);
        if (solver.info() != Eigen::Success) fail("smoothness: eigenvalue solver did not converge");
        const double lmax = std::max(0.0, solver.eigenvalues()(Eigen::Index(d_) - 1));
        // The solver is backward stable (error <= c d eps ||M||): round up by that much.
        return lmax * (1.0 + 4.0 * double(d_) * 2.220446049250313e-16);
    }
    // Large d: power iteration on M from a fixed start (all ones plus a ramp, so it is not
    // orthogonal to the top eigenvector in practice). This is an estimate from below.
    std::vector<double> v(d_), w(d_);
    for (uint64_t j = 0; j < d_; ++j) v[j] = 1.0 + double(j % 7) / 7.0;
    double lambda = 0.0;
    for (int it = 0; it < iters; ++it) {
        double nv = 0.0;
        for (double a : v) nv += a * a;
        nv = std::sqrt(nv);
        if (nv == 0.0) return 0.0;
        for (double& a : v) a /= nv;
        std::fill(w.begin(), w.end(), 0.0);
        for (uint64_t k = 0; k < count; ++k) {
            const uint64_t i = idx ? uint64_t(idx[k]) : k;
            axpy(i, dot(i, v.data()), w.data());
        }
        double num = 0.0;
        for (uint64_t j = 0; j < d_; ++j) num += v[j] * w[j];
        const double next = num / double(count);
        v.swap(w);
        if (it > 5 && std::fabs(next - lambda) <= 1e-10 * std::fabs(next)) {
            lambda = next;
            break;
        }
        lambda = next;
    }
    return lambda;
}

// ---- Problem --------------------------------------------------------------------------------

namespace {
constexpr int64_t kSampleBlock = 2048;

double reg_loss(const double* x, uint64_t d, double l2) {
    if (l2 == 0.0) return 0.0;
    double s = 0.0;
    for (uint64_t j = 0; j < d; ++j) s += x[j] * x[j];
    return 0.5 * l2 * s;
}
}  // namespace

double Problem::loss(const double* x, const int64_t* idx, uint64_t count) const {
    if (!idx) return full_loss(x);
    return loss_sum(x, idx, count) / double(count) + reg_loss(x, dim(), l2_);
}

void Problem::grad(const double* x, const int64_t* idx, uint64_t count, double* g) const {
    const uint64_t d = dim();
    if (!idx) {
        full_grad(x, g);
        return;
    }
    std::fill(g, g + d, 0.0);
    grad_sum(x, idx, count, g);
    const double inv = 1.0 / double(count);
    for (uint64_t j = 0; j < d; ++j) g[j] = g[j] * inv + l2_ * x[j];
}

double Problem::full_loss(const double* x) const {
    const double s = block_sum(
        int64_t(n()),
        [&](int64_t lo, int64_t hi) {
            // Contiguous sample range: the index list is implicit.
            double acc = 0.0;
            int64_t buf[256];
            for (int64_t i = lo; i < hi; i += 256) {
                const int64_t c = std::min<int64_t>(256, hi - i);
                for (int64_t k = 0; k < c; ++k) buf[k] = i + k;
                acc += loss_sum(x, buf, uint64_t(c));
            }
            return acc;
        },
        kSampleBlock, row_cost());
    return s / double(n()) + reg_loss(x, dim(), l2_);
}

double Problem::full_grad(const double* x, double* g) const {
    const uint64_t d = dim();
    const int64_t nb = num_blocks(int64_t(n()), kSampleBlock);
    std::vector<double> parts(size_t(nb) * d, 0.0);
    parallel_blocks(
        int64_t(n()),
        [&](int64_t b, int64_t lo, int64_t hi) {
            int64_t buf[256];
            for (int64_t i = lo; i < hi; i += 256) {
                const int64_t c = std::min<int64_t>(256, hi - i);
                for (int64_t k = 0; k < c; ++k) buf[k] = i + k;
                grad_sum(x, buf, uint64_t(c), parts.data() + size_t(b) * d);
            }
        },
        kSampleBlock, row_cost());
    std::fill(g, g + d, 0.0);
    for (int64_t b = 0; b < nb; ++b)
        for (uint64_t j = 0; j < d; ++j) g[j] += parts[size_t(b) * d + j];
    const double inv = 1.0 / double(n());
    double nsq = 0.0;
    for (uint64_t j = 0; j < d; ++j) {
        g[j] = g[j] * inv + l2_ * x[j];
        nsq += g[j] * g[j];
    }
    return nsq;
}

double Problem::smoothness(const int64_t* idx, uint64_t count) const {
    return curvature() * data_.max_eig_mean_outer(idx, count) + l2_;
}

// ---- LeastSquares ---------------------------------------------------------------------------

LeastSquares::LeastSquares(Dataset data, std::vector<float> b, double l2) : Problem(std::move(data), l2), b_(std::move(b)) {
    if (b_.size() != data_.n()) fail("LeastSquares: b must have one entry per row of A");
    for (float v : b_)
        if (!std::isfinite(v)) fail("LeastSquares: b contains NaN or Inf");
}

double LeastSquares::loss_sum(const double* x, const int64_t* idx, uint64_t count) const {
    double s = 0.0;
    for (uint64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(idx[k]);
        const double r = data_.dot(i, x) - b_[i];
        s += 0.5 * r * r;
    }
    return s;
}

void LeastSquares::grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const {
    for (uint64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(idx[k]);
        data_.axpy(i, data_.dot(i, x) - b_[i], g);
    }
}

// ---- LogisticRegression ---------------------------------------------------------------------

LogisticRegression::LogisticRegression(Dataset data, std::vector<float> y, double l2)
    : Problem(std::move(data), l2), y_(std::move(y)) {
    if (y_.size() != data_.n()) fail("LogisticRegression: y must have one label per row of X");
    for (float v : y_)
        if (v != 1.0f && v != -1.0f) fail("LogisticRegression: labels y must be +1 or -1 (map {0,1} labels with 2*y-1)");
}

namespace {
// log(1 + exp(-m)) without overflow.
inline double softplus_neg(double m) { return m > 0 ? std::log1p(std::exp(-m)) : -m + std::log1p(std::exp(m)); }
// 1 / (1 + exp(m))
inline double sigmoid_neg(double m) {
    if (m >= 0) {
        const double e = std::exp(-m);
        return e / (1.0 + e);
    }
    return 1.0 / (1.0 + std::exp(m));
}
}  // namespace

double LogisticRegression::loss_sum(const double* x, const int64_t* idx, uint64_t count) const {
    double s = 0.0;
    for (uint64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(idx[k]);
        s += softplus_neg(double(y_[i]) * data_.dot(i, x));
    }
    return s;
}

void LogisticRegression::grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const {
    for (uint64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(idx[k]);
        const double y = y_[i];
        data_.axpy(i, -y * sigmoid_neg(y * data_.dot(i, x)), g);
    }
}

// ---- SoftmaxRegression ----------------------------------------------------------------------

SoftmaxRegression::SoftmaxRegression(Dataset data, std::vector<int64_t> labels, uint32_t classes, double l2)
    : Problem(std::move(data), l2), labels_(std::move(labels)), classes_(classes) {
    if (classes_ < 2) fail("SoftmaxRegression: n_classes must be >= 2");
    if (labels_.size() != data_.n()) fail("SoftmaxRegression: y must have one label per row of X");
    for (int64_t v : labels_)
        if (v < 0 || v >= int64_t(classes_)) fail("SoftmaxRegression: labels must be integers in [0, n_classes)");
}

double SoftmaxRegression::loss_sum(const double* x, const int64_t* idx, uint64_t count) const {
    const uint64_t d = data_.d();
    std::vector<double> z(classes_);
    double s = 0.0;
    for (uint64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(idx[k]);
        double mx = -INFINITY;
        for (uint32_t c = 0; c < classes_; ++c) mx = std::max(mx, z[c] = data_.dot(i, x + c * d));
        double se = 0.0;
        for (uint32_t c = 0; c < classes_; ++c) se += std::exp(z[c] - mx);
        s += mx + std::log(se) - z[size_t(labels_[i])];
    }
    return s;
}

void SoftmaxRegression::grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const {
    const uint64_t d = data_.d();
    std::vector<double> z(classes_);
    for (uint64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(idx[k]);
        double mx = -INFINITY;
        for (uint32_t c = 0; c < classes_; ++c) mx = std::max(mx, z[c] = data_.dot(i, x + c * d));
        double se = 0.0;
        for (uint32_t c = 0; c < classes_; ++c) se += (z[c] = std::exp(z[c] - mx));
        for (uint32_t c = 0; c < classes_; ++c) {
            const double p = z[c] / se - (int64_t(c) == labels_[i] ? 1.0 : 0.0);
            data_.axpy(i, p, g + c * d);
        }
    }
}

}  // namespace pyqsgd
