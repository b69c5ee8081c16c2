// Smooth finite-sum problems: f(x) = (1/n) sum_i phi_i(x) + (l2/2)||x||^2 (DESIGN.md).
//
// Sums over samples run in index order inside fixed sample blocks, and blocks are added in
// order, so losses and gradients are bitwise identical at any thread count.
#pragma once
#include <memory>
#include <string>

#include "pyqsgd/problems/dataset.hpp"

namespace pyqsgd {

class Problem {
   public:
    Problem(Dataset data, double l2) : data_(std::move(data)), l2_(l2) {}
    virtual ~Problem() = default;
    virtual std::string name() const = 0;
    // Model dimension (d, or d * classes for softmax).
    virtual uint64_t dim() const { return data_.d(); }
    uint64_t n() const { return data_.n(); }
    double l2() const { return l2_; }
    const Dataset& data() const { return data_; }

    // sum_{i in idx} phi_i(x) (no regulariser); g += sum_{i in idx} grad phi_i(x).
    virtual double loss_sum(const double* x, const int64_t* idx, uint64_t count) const = 0;
    virtual void grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const = 0;

    // Mean over idx plus the regulariser. idx == nullptr means all samples.
    double loss(const double* x, const int64_t* idx, uint64_t count) const;
    void grad(const double* x, const int64_t* idx, uint64_t count, double* g) const;
    // Full objective f(x) and ||grad f(x)||^2, parallel over fixed sample blocks.
    double full_loss(const double* x) const;
    double full_grad(const double* x, double* g) const;  // returns ||g||^2
    // Smoothness constant of the mean over idx (all samples when null): curvature bound of
    // phi times the top eigenvalue of the mean outer product, plus l2.
    double smoothness(const int64_t* idx, uint64_t count) const;

    // Rough operations per sample (for deciding whether threads pay off).
    double row_cost() const { return double(dim()) * (data_.sparse() ? 0.1 : 1.0) + 10.0; }

   protected:
    virtual double curvature() const = 0;  // sup phi'' (1 least squares, 1/4 logistic, 1/2 softmax)
    Dataset data_;
    double l2_;
};

// phi_i = (1/2)(a_i^T x - b_i)^2
class LeastSquares final : public Problem {
   public:
    LeastSquares(Dataset data, std::vector<float> b, double l2);
    std::string name() const override { return "LeastSquares"; }
    double loss_sum(const double* x, const int64_t* idx, uint64_t count) const override;
    void grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const override;

   protected:
    double curvature() const override { return 1.0; }

   private:
    std::vector<float> b_;
};

// phi_i = log(1 + exp(-y_i a_i^T x)), y_i = +-1
class LogisticRegression final : public Problem {
   public:
    LogisticRegression(Dataset data, std::vector<float> y, double l2);
    std::string name() const override { return "LogisticRegression"; }
    double loss_sum(const double* x, const int64_t* idx, uint64_t count) const override;
    void grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const override;

   protected:
    double curvature() const override { return 0.25; }

   private:
    std::vector<float> y_;
};

// phi_i = logsumexp(W a_i) - (W a_i)_{y_i}; x = W row-major (classes x d).
class SoftmaxRegression final : public Problem {
   public:
    SoftmaxRegression(Dataset data, std::vector<int64_t> labels, uint32_t classes, double l2);
    std::string name() const override { return "SoftmaxRegression"; }
    uint64_t dim() const override { return data_.d() * classes_; }
    uint32_t classes() const { return classes_; }
    double loss_sum(const double* x, const int64_t* idx, uint64_t count) const override;
    void grad_sum(const double* x, const int64_t* idx, uint64_t count, double* g) const override;

   protected:
    double curvature() const override { return 0.5; }

   private:
    std::vector<int64_t> labels_;
    uint32_t classes_;
};

}  // namespace pyqsgd
