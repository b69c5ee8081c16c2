// The method interface: the algorithm around compressors (DESIGN.md "Method").
//
// Each round the simulator calls worker(i, ...) for every participating worker (in parallel;
// a worker touches only its own state slot) and then server(...) once. State is explicit and
// exposed through state() for inspection.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pyqsgd/compressor.hpp"
#include "pyqsgd/methods/state_rows.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

// Facts fixed for a run.
struct RunInfo {
    uint32_t m = 0;
    uint64_t d = 0;
    std::vector<double> weights;  // aggregation weights w_i, summing to 1 (Mean: 1/m)
    std::vector<double> prob;     // participation probabilities p_i (1 = always)
    std::vector<double> batch;    // samples per local gradient (batch size or shard size)
    bool state_f32 = false;       // per-worker state rows in float32 (simulate(state_dtype=...))
};

enum class Upload : uint8_t { kIdle = 0, kSent = 1, kSkipped = 2 };

// A vector bound for the wire is NaN/Inf or overflows float32: the run has diverged. The
// simulator stops cleanly on it (history kept) instead of surfacing a compressor error.
struct NonFiniteError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// What a round's participants see.
struct Round {
    uint32_t t = 0;                           // 0-based index of the step being taken
    double lr = 0.0;
    Key key;                                  // the run's key; compressors use key.with(t, i)
    const double* x = nullptr;                // current model x^t
    const std::vector<double>* step_sq = nullptr;  // ||x^{s+1} - x^s||^2 for past s, latest last
};

using NamedArrays = std::vector<std::pair<std::string, std::vector<double>>>;

// A state array moved out of a finished run (float64, or float32 for float32 state rows), so
// handing the state to Python does not copy the largest arrays of the run.
struct OwnedArray {
    std::string name;
    bool f32 = false;
    std::vector<double> f64;
    std::vector<float> f32_data;
};

// A server-side aggregation rule other than the weighted sum (an Aggregator written in Python).
// `senders` are the workers that sent, in worker order; coef[k] is the coefficient the weighted
// sum would give senders[k] (w_i/p_i for estimators, w_i for tracked means); out has d entries.
class Combiner {
   public:
    virtual ~Combiner() = default;
    virtual std::string name() const = 0;
    virtual bool needs_gil() const { return false; }
    virtual void combine(const std::vector<uint32_t>& senders, const std::vector<float*>& decoded,
                         const std::vector<Message>& msgs, const std::vector<double>& coef, uint64_t d,
                         double* out) const = 0;
};
using CombinerPtr = std::shared_ptr<const Combiner>;

class Method {
   public:
    virtual ~Method() = default;
    virtual std::string name() const = 0;
    // Allocates and zeroes state for a run; checks compressors against d (and the list
    // length against m when one compressor per worker is given).
    virtual void reset(const RunInfo& info, const double* x0);
    // Worker i with local vector v (its stochastic gradient, or its model change after local
    // steps). Returns kSent with `msg` and its decoding in `decoded`, or kSkipped.
    virtual Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded,
                          Workspace& ws) = 0;
    // Aggregates and writes the step: x^{t+1} = x^t - step (before server momentum and
    // downlink). Returns the downlink payload bits, or -1 for the default broadcast (32 d).
    virtual int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                           const std::vector<Message>& msgs, double* step) = 0;
    // How many past ||x^{s+1} - x^s||^2 the method reads from Round::step_sq.
    virtual size_t history_needed() const { return 0; }
    // Bits a skipping worker sends (a flag), counted in bits_up.
    virtual uint64_t skip_bits() const { return 0; }
    virtual NamedArrays state() const = 0;
    // Restores state saved from state() (same names and sizes, after reset() for the same run
    // shape); used to checkpoint the DDP hook. Throws std::invalid_argument on a missing or
    // unknown name or a size mismatch. The default accepts only an empty set (stateless methods).
    virtual void load_state(const NamedArrays& s) {
        if (!s.empty()) fail(name() + ": load_state is not implemented for this method");
    }
    // The state, moved out: the method's state is unspecified afterwards (the run is over).
    // The default copies state(); methods with StateRows move those rows.
    virtual std::vector<OwnedArray> take_state();

    // Streaming server step (the simulator's memory-lean path). A method whose server step
    // reads the decoded messages only through weighted sums in worker order can take them a
    // chunk of workers at a time, so the simulator never holds all m decoded messages:
    // stream_begin zeroes the sums, stream_add adds one chunk's senders (in worker order, the
    // chunks in worker order), stream_finish completes the step. The floating-point operations
    // are exactly server()'s, so both give bitwise-identical steps.
    virtual bool streams() const { return false; }
    virtual void stream_begin(const Round&, double* step) {}
    virtual void stream_add(const Round&, const uint32_t* senders, const float* const* rows, size_t n,
                            double* step) {}
    virtual int64_t stream_finish(const Round&, double* step) { return -1; }

    // Learned per-worker vote weights (federated voting); empty otherwise.
    virtual std::vector<double> vote_weights() const { return {}; }
    // True when a worker or server step calls back into Python (a Python method, compressor or
    // aggregator): the simulator then runs the worker loop on one thread (see Compressor).
    virtual bool needs_gil() const {
        for (const auto& c : comps_)
            if (c->needs_gil()) return true;
        return (downlink && downlink->needs_gil()) || (combiner && combiner->needs_gil());
    }

    const RunInfo& info() const { return info_; }
    // What the server decodes from worker i's message (used when workers run elsewhere, e.g.
    // in the DDP hook, and the decoding is not shared with the worker).
    // The receiver knows d: a message for another dimension is refused before decoding.
    void decode(uint32_t i, const Message& msg, float* out, Workspace& ws) const {
        if (msg.d != info_.d)
            fail(name() + ": worker " + std::to_string(i) + "'s message has d=" + std::to_string(msg.d) +
                 ", this run has d=" + std::to_string(info_.d));
        comp(i).decompress(msg, out, ws);
    }
    // Server momentum beta in [0, 1) and optional downlink compressor (applied by the simulator).
    double momentum = 0.0;
    CompressorPtr downlink;
    // Replaces the weighted sum of the estimator (see aggregate); null = weighted sum.
    CombinerPtr combiner;
    // Compresses v (double) as float32 with worker i's key; decodes into `decoded`. Throws
    // NonFiniteError when v is not finite in float32.
    void compress_vector(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded,
                         Workspace& ws) const;
    // The same for a float32 vector (a float32 state row): float(v) is v, so the message is
    // the one the float64 overload gives for the same values.
    void compress_vector(uint32_t i, const Round& r, const float* v, Message& msg, float* decoded,
                         Workspace& ws) const;
    // out = scale * sum over sent workers of coef(i) decoded[i] (the weighted sum, exactly as
    // weighted_sum with coefficients scale * coef(i)), or scale * combiner(...) when a combiner
    // is set. Methods call it where they form their estimator.
    template <class Coef>
    void aggregate(const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, Coef coef, double scale, double* out) const;
    // The plain weighted sum, in worker order, identical at any thread count.
    template <class Coef>
    void weighted_sum(const std::vector<Upload>& status, const std::vector<float*>& decoded, Coef coef,
                      double* out) const;
    // out[j] += coef(senders[k]) * rows[k][j] for k in order: one chunk of a weighted sum.
    template <class Coef>
    void accumulate(const uint32_t* senders, const float* const* rows, size_t n, Coef coef, double* out) const;

   protected:
    RunInfo info_;
    // Per-worker compressors: one shared by all, or exactly m.
    std::vector<CompressorPtr> comps_;
    const Compressor& comp(uint32_t i) const { return comps_.size() == 1 ? *comps_[0] : *comps_[i]; }

    // Copies each array of `s` into the slot with its name, checking sizes; every slot is required.
    void assign_state(const NamedArrays& s, const std::vector<std::pair<std::string, std::vector<double>*>>& slots);
    // server() of a streaming method without a combiner: its stream steps over all senders.
    int64_t server_by_stream(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                             double* step);
    // take_state() for a method whose state() lists `rows` (moved) among other arrays (copied).
    std::vector<OwnedArray> take_rows(const std::vector<std::pair<std::string, StateRows*>>& rows);
    std::vector<uint32_t> stream_senders_;  // server_by_stream scratch
    std::vector<const float*> stream_rows_;
    // Estimator coefficient w_i / p_i (unbiased under partial participation).
    double est_coef(uint32_t i) const { return info_.weights[i] / info_.prob[i]; }
};

template <class Coef>
void Method::accumulate(const uint32_t* senders, const float* const* rows, size_t n, Coef coef, double* out) const {
    parallel_blocks(int64_t(info_.d), [&](int64_t, int64_t lo, int64_t hi) {
        for (size_t k = 0; k < n; ++k) {
            const double c = coef(senders[k]);
            const float* row = rows[k];
            for (int64_t j = lo; j < hi; ++j) out[j] += c * double(row[j]);
        }
    });
}

template <class Coef>
void Method::weighted_sum(const std::vector<Upload>& status, const std::vector<float*>& decoded, Coef coef,
                          double* out) const {
    const uint64_t d = info_.d;
    const uint32_t m = info_.m;
    parallel_blocks(int64_t(d), [&](int64_t, int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) out[j] = 0.0;
        for (uint32_t i = 0; i < m; ++i) {
            if (status[i] != Upload::kSent) continue;
            const double c = coef(i);
            const float* row = decoded[i];
            for (int64_t j = lo; j < hi; ++j) out[j] += c * double(row[j]);
        }
    });
}

template <class Coef>
void Method::aggregate(const std::vector<Upload>& status, const std::vector<float*>& decoded,
                       const std::vector<Message>& msgs, Coef coef, double scale, double* out) const {
    if (!combiner) {
        weighted_sum(status, decoded, [&](uint32_t i) { return scale * coef(i); }, out);
        return;
    }
    std::vector<uint32_t> senders;
    std::vector<double> c;
    for (uint32_t i = 0; i < info_.m; ++i)
        if (status[i] == Upload::kSent) {
            senders.push_back(i);
            c.push_back(coef(i));
        }
    const uint64_t d = info_.d;
    if (senders.empty()) {
        for (uint64_t j = 0; j < d; ++j) out[j] = 0.0;
        return;
    }
    combiner->combine(senders, decoded, msgs, c, d, out);
    if (scale != 1.0)
        for (uint64_t j = 0; j < d; ++j) out[j] *= scale;
}

}  // namespace pyqsgd
