// Per-worker method state (m rows of d values: EF errors, EF21 g_i, DIANA h_i, ...), kept in
// float64 or, with simulate(state_dtype="float32"), in float32 to halve the largest memory of
// a run with many workers. A worker step reads and writes its row through with_row(), whose
// callback is generic over the element type, so one loop body serves both; arithmetic stays
// in float64 and only the stored value is rounded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pyqsgd {

class StateRows {
   public:
    void assign(bool f32, size_t m, size_t d) {
        f32_ = f32;
        m_ = m;
        d_ = d;
        if (f32) {
            f64_.clear();
            f64_.shrink_to_fit();
            f32_data_.assign(m * d, 0.0f);
        } else {
            f32_data_.clear();
            f32_data_.shrink_to_fit();
            f64_.assign(m * d, 0.0);
        }
    }
    // f(row pointer) for worker i's row; the pointer is float* or double*.
    template <class F>
    decltype(auto) with_row(size_t i, F&& f) {
        return f32_ ? f(f32_data_.data() + i * d_) : f(f64_.data() + i * d_);
    }
    template <class F>
    decltype(auto) with_row(size_t i, F&& f) const {
        return f32_ ? f(f32_data_.data() + i * d_) : f(f64_.data() + i * d_);
    }
    bool is_f32() const { return f32_; }
    size_t size() const { return m_ * d_; }
    const double* f64_data() const { return f32_ ? nullptr : f64_.data(); }
    const float* f32_data() const { return f32_ ? f32_data_.data() : nullptr; }
    // A float64 copy (Method::state(), checkpoints).
    std::vector<double> to_double() const {
        if (!f32_) return f64_;
        return std::vector<double>(f32_data_.begin(), f32_data_.end());
    }
    // Restores from float64 values (rounded to float32 in float32 mode); sizes checked by the caller.
    void from_double(const std::vector<double>& v) {
        if (!f32_) {
            f64_ = v;
            return;
        }
        f32_data_.assign(v.begin(), v.end());
    }
    // Moves the storage out (the run is over; Simulator::take_method_state). The shape stays,
    // the rows are gone: nothing may read them afterwards (the simulator refuses to continue).
    std::vector<double> take_f64() { return std::move(f64_); }
    std::vector<float> take_f32() { return std::move(f32_data_); }

   private:
    bool f32_ = false;
    size_t m_ = 0, d_ = 0;
    std::vector<double> f64_;
    std::vector<float> f32_data_;
};

}  // namespace pyqsgd
