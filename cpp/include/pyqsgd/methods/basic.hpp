// DCGD, EF, EF21 and DIANA (ALGORITHMS.md §3) over any compressor, with partial
// participation weighting: estimators use w_i/p_i, tracked means (EF21's g, DIANA's h) use w_i.
#pragma once
#include "pyqsgd/methods/method.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

// Worker sends C(g_i); server steps lr * sum_{i in S} (w_i/p_i) C(g_i).
class DCGD final : public Method {
   public:
    explicit DCGD(std::vector<CompressorPtr> c) { comps_ = std::move(c); }
    std::string name() const override { return "DCGD"; }
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    NamedArrays state() const override { return {}; }
    bool streams() const override { return !combiner; }
    void stream_begin(const Round& r, double* step) override;
    void stream_add(const Round& r, const uint32_t* senders, const float* const* rows, size_t n, double* step) override;
};

// Error feedback: p = lr g + e, Delta = C(p), e <- p - Delta; server steps sum (w_i/p_i) Delta_i.
class EF final : public Method {
   public:
    explicit EF(std::vector<CompressorPtr> c) { comps_ = std::move(c); }
    std::string name() const override { return "EF"; }
    void reset(const RunInfo& info, const double* x0) override;
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    NamedArrays state() const override;
    void load_state(const NamedArrays& s) override;
    std::vector<OwnedArray> take_state() override { return take_rows({{"error", &e_}}); }
    bool streams() const override { return !combiner; }
    void stream_begin(const Round& r, double* step) override;
    void stream_add(const Round& r, const uint32_t* senders, const float* const* rows, size_t n, double* step) override;

   private:
    StateRows e_;  // m x d error memory
};

// EF21: worker c = C(g_i - gi), gi += c; server g += sum w_i c_i, steps lr * g. With
// exact_init the first upload is the uncompressed gradient (32 d bits).
class EF21 final : public Method {
   public:
    EF21(std::vector<CompressorPtr> c, bool exact_init) : exact_init_(exact_init) { comps_ = std::move(c); }
    std::string name() const override { return "EF21"; }
    void reset(const RunInfo& info, const double* x0) override;
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    NamedArrays state() const override;
    void load_state(const NamedArrays& s) override;
    std::vector<OwnedArray> take_state() override { return take_rows({{"g_workers", &gi_}}); }
    bool streams() const override { return !combiner; }
    void stream_begin(const Round& r, double* step) override;
    void stream_add(const Round& r, const uint32_t* senders, const float* const* rows, size_t n, double* step) override;
    int64_t stream_finish(const Round& r, double* step) override;

   private:
    bool exact_init_;
    StateRows gi_;  // m x d
    std::vector<double> g_;
    std::vector<uint8_t> started_;
};

// DIANA: worker D = Q(g_i - h_i), h_i += alpha D; server g^ = h + sum (w_i/p_i) D_i,
// h += alpha sum w_i D_i, steps lr * g^.
class DIANA final : public Method {
   public:
    DIANA(std::vector<CompressorPtr> c, double alpha) : alpha_(alpha) { comps_ = std::move(c); }
    std::string name() const override { return "DIANA"; }
    void reset(const RunInfo& info, const double* x0) override;
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    NamedArrays state() const override;
    void load_state(const NamedArrays& s) override;
    std::vector<OwnedArray> take_state() override { return take_rows({{"h_workers", &hi_}}); }
    bool streams() const override { return !combiner; }
    void stream_begin(const Round& r, double* step) override;
    void stream_add(const Round& r, const uint32_t* senders, const float* const* rows, size_t n, double* step) override;
    int64_t stream_finish(const Round& r, double* step) override;

   private:
    double alpha_;
    StateRows hi_;  // m x d
    std::vector<double> h_, tmp_;
};

}  // namespace pyqsgd
