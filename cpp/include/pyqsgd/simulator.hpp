// The round loop: participation, batch sampling, per-worker gradients and method steps in
// parallel over workers, then the server step, server momentum, downlink and metrics.
//
// Every random draw is addressed: participation by (seed', t), batches by (seed'', t, worker,
// local step), compressors by (seed, t, worker). Parallel loops write disjoint slots and all
// reductions run in fixed order, so the history is bitwise identical at any thread count.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "pyqsgd/methods/method.hpp"
#include "pyqsgd/problems/problem.hpp"

namespace pyqsgd {

struct SimConfig {
    uint32_t m = 1;
    uint64_t rounds = 1;   // planned total (the last round is always logged)
    double lr = 0.1;
    Key key;
    std::vector<std::vector<int64_t>> parts;  // one index array per worker
    std::vector<uint64_t> batch;               // per worker; 0 = full local batch
    std::vector<double> prob;                  // per worker participation probability
    uint32_t tau = 0;                          // > 0: tau-nice sampling instead of coins
    uint32_t local_steps = 0;                  // 0 = send gradients; H > 0 = H local SGD steps
    double local_lr = 0.0;
    uint64_t log_every = 1;
    std::vector<double> weights;               // aggregation weights (normalised here)
    bool state_f32 = false;  // per-worker method state in float32 (RunInfo::state_f32)
    // Stream workers a chunk at a time when the method can (Method::streams): no m x d buffers
    // of local vectors and decoded messages. Results are bitwise identical either way; false
    // forces the buffered path (tests compare the two).
    bool streaming = true;
};

struct LogRow {
    uint64_t round = 0;
    double loss = 0.0, grad_norm_sq = 0.0;
    uint64_t bits_up = 0, bits_down = 0, uploads = 0, skipped = 0;
};

class Simulator {
   public:
    // `problem` may be null: gradients are then supplied from outside (step_external).
    Simulator(std::shared_ptr<const Problem> problem, std::shared_ptr<Method> method, SimConfig cfg,
              std::vector<double> x0);

    // Native problems: runs up to n more rounds. Returns false if it stopped on a non-finite
    // loss or model (the history so far is kept).
    bool run(uint64_t n);

    // External (Python) problems: who participates in round t, which samples worker i uses at
    // local step h, then the method step with the supplied local vectors V (m x d, rows of
    // idle workers ignored); false when the run diverged (non-finite vector for the wire).
    std::vector<uint8_t> participation(uint64_t t) const;
    std::vector<int64_t> batch(uint64_t t, uint32_t i, uint32_t h) const;
    bool step_external(const double* V);
    // The same for a streaming method, with the local vectors fetched a window at a time:
    // rows(w0, n) returns workers w0..w0+n-1's vectors (n x d, idle rows ignored), valid until
    // the next call; windows have `per_call` workers (the last one fewer), in worker order. The
    // caller never holds m x d. Falls back to one window of all m workers when not streaming.
    using RowSource = std::function<const double*(uint32_t w0, uint32_t n)>;
    bool step_external_rows(const RowSource& rows, uint32_t per_call);
    bool log_external(double loss, double grad_norm_sq);
    bool due_for_log() const;

    uint64_t round() const { return t_; }
    const std::vector<double>& x() const { return x_; }
    const std::vector<LogRow>& log() const { return log_; }
    const std::vector<std::vector<uint64_t>>& worker_bits() const { return worker_bits_log_; }
    const std::vector<std::vector<double>>& vote_weights() const { return vote_log_; }
    const Method& method() const { return *method_; }
    uint64_t dim() const { return d_; }
    uint32_t workers() const { return cfg_.m; }
    bool streaming() const { return lean_; }
    // The method's state moved out (the run is over; see Method::take_state).
    std::vector<OwnedArray> take_method_state() {
        state_taken_ = true;
        return method_->take_state();
    }

   private:
    void local_vector(uint32_t i, double* v, Workspace& ws) const;
    // Worker i's samples at (t, h): its shard for full batches (no copy), else a Floyd sample
    // of shard positions written into ws scratch. Returns the pointer and sets count.
    const int64_t* batch_view(uint64_t t, uint32_t i, uint32_t h, Workspace& ws, uint64_t& count) const;
    Round make_round() const;
    // One round of worker steps and the server step into step_ (buffered: all m rows at once).
    // V = the local vectors (m x d) from outside, or null to compute them (native problems).
    int64_t buffered_round(const std::vector<uint8_t>& active, const double* V);
    // The same, a chunk of workers at a time with a streaming method: the memory-lean path.
    int64_t streamed_round(const std::vector<uint8_t>& active, const double* V);
    // Worker i's uplink bits this round (its message, a skip flag, or nothing).
    uint64_t upload_bits(uint32_t i, const Message& msg) const;
    // Adds worker i's upload to the round's bit counters.
    void count_upload(uint32_t i);
    void check_state_kept() const;  // throws once take_method_state() ended the run
    void method_round(const std::vector<uint8_t>& active, const double* V);
    // method_round, or false (nothing applied to x) when a vector for the wire is non-finite.
    bool method_round_or_stop(const std::vector<uint8_t>& active, const double* V);
    bool record(double loss, double gns);
    bool log_native();

    std::shared_ptr<const Problem> problem_;
    std::shared_ptr<Method> method_;
    SimConfig cfg_;
    uint64_t d_;
    double work_ = 0.0;  // rough operations per round, to decide whether threads pay off
    uint64_t t_ = 0;
    std::vector<double> x_, step_, momentum_buf_, grad_buf_;
    bool state_taken_ = false;  // take_method_state() ended the run
    const RowSource* rows_ = nullptr;  // step_external_rows' source during its round
    uint32_t rows_per_call_ = 0;
    bool lean_ = false;         // streamed_round (see SimConfig::streaming)
    // Buffered path: one row per worker. Streamed path: one row per slot of a chunk.
    std::vector<double> V_;     // local vectors (native problems only)
    std::vector<float> dec_;    // decoded messages
    std::vector<float*> dec_rows_;
    std::vector<Message> msgs_;
    std::deque<Workspace> ws_;  // deque: Workspace is not copyable
    std::vector<Upload> status_;
    std::vector<uint32_t> chunk_senders_;
    std::vector<const float*> chunk_rows_;
    std::vector<uint64_t> round_bits_;  // per worker, committed when the round succeeds
    Workspace server_ws_;
    Message down_msg_;
    std::vector<float> down_buf_, down_dec_;
    std::vector<double> step_sq_;
    uint64_t bits_up_ = 0, bits_down_ = 0, uploads_ = 0, skipped_ = 0;
    std::vector<uint64_t> worker_bits_;
    std::vector<LogRow> log_;
    std::vector<std::vector<uint64_t>> worker_bits_log_;
    std::vector<std::vector<double>> vote_log_;
};

}  // namespace pyqsgd
