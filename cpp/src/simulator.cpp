#include "pyqsgd/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <exception>

#include "pyqsgd/compressors/sparse.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {
namespace {
// Purpose-specific seeds derived from the user seed (compressors use the seed itself).
constexpr uint64_t kBatchSalt = 0xB47C4ull, kParticipationSalt = 0x9A271ull, kDownlinkSalt = 0xD0411ull;
Key derived(const Key& k, uint64_t salt) {
    Key out;
    out.seed = mix64(k.seed ^ mix64(salt));
    return out;
}
}  // namespace

Simulator::Simulator(std::shared_ptr<const Problem> problem, std::shared_ptr<Method> method, SimConfig cfg,
                     std::vector<double> x0)
    : problem_(std::move(problem)), method_(std::move(method)), cfg_(std::move(cfg)), x_(std::move(x0)) {
    const uint32_t m = cfg_.m;
    d_ = x_.size();
    if (m == 0) fail("n_workers must be >= 1");
    if (d_ == 0) fail("x0 must be non-empty");
    if (problem_ && problem_->dim() != d_)
        fail("x0 has length " + std::to_string(d_) + " but the problem has dimension " + std::to_string(problem_->dim()));
    if (cfg_.parts.size() != m) fail("partition must have one index array per worker");
    if (cfg_.batch.size() != m || cfg_.prob.size() != m) fail("batch_size and participation need one entry per worker");
    if (!(cfg_.lr > 0.0) || !std::isfinite(cfg_.lr)) fail("lr must be a positive finite number");
    for (uint32_t i = 0; i < m; ++i) {
        if (cfg_.parts[i].empty()) fail("worker " + std::to_string(i) + " has an empty shard; every worker needs data");
        if (cfg_.batch[i] > cfg_.parts[i].size())
            fail("batch_size " + std::to_string(cfg_.batch[i]) + " of worker " + std::to_string(i) +
                 " exceeds its shard size " + std::to_string(cfg_.parts[i].size()));
        if (!(cfg_.prob[i] > 0.0 && cfg_.prob[i] <= 1.0)) fail("participation probabilities must be in (0, 1]");
        if (problem_)
            for (int64_t s : cfg_.parts[i])
                if (s < 0 || uint64_t(s) >= problem_->n()) fail("partition index out of range for the problem's data");
    }
    if (cfg_.tau > m) fail("tau must be <= n_workers");
    if (cfg_.log_every == 0) fail("log_every must be >= 1");
    if (cfg_.local_steps > 0 && !(cfg_.local_lr > 0.0)) fail("local_lr must be > 0 when local_steps > 0");
    if (cfg_.weights.size() != m) fail("weights need one entry per worker");
    double wsum = 0.0;
    for (double w : cfg_.weights) {
        if (!(w >= 0.0) || !std::isfinite(w)) fail("aggregation weights must be finite and >= 0");
        wsum += w;
    }
    if (!(wsum > 0.0)) fail("aggregation weights must not all be zero");
    RunInfo info;
    info.m = m;
    info.d = d_;
    for (double w : cfg_.weights) info.weights.push_back(w / wsum);
    info.prob = cfg_.prob;
    info.state_f32 = cfg_.state_f32;
    for (uint32_t i = 0; i < m; ++i) info.batch.push_back(double(cfg_.batch[i] ? cfg_.batch[i] : cfg_.parts[i].size()));
    if (cfg_.tau > 0) std::fill(info.prob.begin(), info.prob.end(), double(cfg_.tau) / double(m));
    method_->reset(info, x_.data());

    step_.assign(d_, 0.0);
    momentum_buf_.assign(d_, 0.0);
    grad_buf_.assign(d_, 0.0);
    // Streamed: a few chunk slots per thread keep the team busy (dynamic schedule) while the
    // buffers stay O(threads x d); results do not depend on the slot count.
    lean_ = cfg_.streaming && method_->streams();
    const uint32_t rows = lean_ ? std::min<uint32_t>(m, uint32_t(std::max(8, 4 * get_num_threads()))) : m;
    if (problem_) V_.assign(size_t(rows) * d_, 0.0);  // external problems pass their vectors in
    dec_.assign(size_t(rows) * d_, 0.0f);
    for (uint32_t k = 0; k < rows; ++k) dec_rows_.push_back(dec_.data() + size_t(k) * d_);
    msgs_.resize(rows);
    ws_.resize(rows);
    status_.assign(m, Upload::kIdle);
    round_bits_.assign(m, 0);
    worker_bits_.assign(m, 0);
    // Per round: each worker touches its batch's rows (local_steps times) and a few d-vectors.
    const double row = problem_ ? double(problem_->dim()) * (problem_->data().sparse() ? 0.1 : 1.0) : double(d_);
    for (uint32_t i = 0; i < m; ++i) {
        const double b = double(cfg_.batch[i] ? cfg_.batch[i] : cfg_.parts[i].size());
        work_ += b * row * double(std::max<uint32_t>(1, cfg_.local_steps)) + 20.0 * double(d_);
    }
}

std::vector<uint8_t> Simulator::participation(uint64_t t) const {
    const uint32_t m = cfg_.m;
    std::vector<uint8_t> active(m, 1);
    const Key k = derived(cfg_.key, kParticipationSalt).with(uint32_t(t), 0);
    if (cfg_.tau > 0) {
        std::fill(active.begin(), active.end(), 0);
        Workspace ws;
        std::vector<uint32_t> chosen;
        sample_subset(k, m, cfg_.tau, ws, chosen);
        for (uint32_t i : chosen) active[i] = 1;
        return active;
    }
    for (uint32_t i = 0; i < m; ++i)
        if (cfg_.prob[i] < 1.0) active[i] = to_unit_float(draw_u32(k, i)) < float(cfg_.prob[i]);
    return active;
}

const int64_t* Simulator::batch_view(uint64_t t, uint32_t i, uint32_t h, Workspace& ws, uint64_t& count) const {
    const std::vector<int64_t>& shard = cfg_.parts[i];
    const uint64_t b = cfg_.batch[i];
    if (b == 0 || b == shard.size()) {
        count = shard.size();
        return shard.data();
    }
    Key k = derived(cfg_.key, kBatchSalt).with(uint32_t(t), i);
    k.stream = h;
    std::vector<uint32_t>& pos = ws.u(6);
    sample_subset(k, shard.size(), b, ws.child(6), pos);
    std::vector<int64_t>& out = ws.i64(0);
    out.resize(b);
    int64_t* o = out.data();
    for (uint64_t j = 0; j < b; ++j) o[j] = shard[pos[j]];
    count = b;
    return o;
}

std::vector<int64_t> Simulator::batch(uint64_t t, uint32_t i, uint32_t h) const {
    Workspace ws;
    uint64_t count = 0;
    const int64_t* p = batch_view(t, i, h, ws, count);
    return std::vector<int64_t>(p, p + count);
}

void Simulator::local_vector(uint32_t i, double* v, Workspace& ws) const {
    uint64_t count = 0;
    if (cfg_.local_steps == 0) {
        const int64_t* idx = batch_view(t_, i, 0, ws, count);
        problem_->grad(x_.data(), idx, count, v);
        return;
    }
    // H local SGD steps from x; the worker sends its model change x - x_local.
    std::vector<double>& xl = ws.f64(7);
    std::vector<double>& g = ws.f64(8);
    xl = x_;
    g.resize(d_);
    for (uint32_t h = 0; h < cfg_.local_steps; ++h) {
        const int64_t* idx = batch_view(t_, i, h, ws, count);
        problem_->grad(xl.data(), idx, count, g.data());
        for (uint64_t j = 0; j < d_; ++j) xl[j] -= cfg_.local_lr * g[j];
    }
    for (uint64_t j = 0; j < d_; ++j) v[j] = x_[j] - xl[j];
}

Round Simulator::make_round() const {
    Round r;
    r.t = uint32_t(t_);
    r.lr = cfg_.lr;
    r.key = cfg_.key;
    r.x = x_.data();
    r.step_sq = &step_sq_;
    return r;
}

void Simulator::check_state_kept() const {
    if (state_taken_) fail("this run's method state was taken (take_method_state): start a new run");
}

uint64_t Simulator::upload_bits(uint32_t i, const Message& msg) const {
    const Upload st = status_[i];
    return st == Upload::kSent ? msg.bits() : st == Upload::kSkipped ? method_->skip_bits() : 0;
}

void Simulator::count_upload(uint32_t i) {
    // Committed only once every worker step of the round succeeded, so a round that stops
    // on a non-finite vector leaves the counters as they were, on either path.
    if (status_[i] == Upload::kSent)
        ++uploads_;
    else if (status_[i] == Upload::kSkipped)
        ++skipped_;
    bits_up_ += round_bits_[i];
    worker_bits_[i] += round_bits_[i];
}

int64_t Simulator::buffered_round(const std::vector<uint8_t>& active, const double* V) {
    const uint32_t m = cfg_.m;
    const Round r = make_round();
    auto work = [&](int64_t ii) {
        const uint32_t i = uint32_t(ii);
        status_[i] = active[i] ? method_->worker(i, r, V + size_t(i) * d_, msgs_[i], dec_rows_[i], ws_[i])
                               : Upload::kIdle;
    };
    // A method that calls back into Python runs its workers on this thread, in worker order,
    // stopping at the first exception: the callbacks take the GIL, so OpenMP threads would
    // only queue on it, and no thread ever waits at an OpenMP barrier while another waits for
    // the GIL.
    if (method_->needs_gil())
        serial_for(m, work);
    else
        parallel_for(m, work, 20.0 * double(m) * double(d_));
    for (uint32_t i = 0; i < m; ++i) {
        round_bits_[i] = upload_bits(i, msgs_[i]);
        count_upload(i);
    }
    return method_->server(r, status_, dec_rows_, msgs_, step_.data());
}

int64_t Simulator::streamed_round(const std::vector<uint8_t>& active, const double* V) {
    const uint32_t m = cfg_.m, slots = uint32_t(msgs_.size());
    const Round r = make_round();
    const bool gil = method_->needs_gil();
    const double per_worker = 20.0 * double(d_) + (V ? 0.0 : work_ / double(m));
    method_->stream_begin(r, step_.data());
    std::exception_ptr failed;
    // Windows of external rows (step_external_rows), or one window of all m workers.
    const uint32_t per_window = rows_ ? std::max<uint32_t>(1, rows_per_call_) : m;
    uint32_t w0 = 0, w_end = 0;
    const double* W = V;  // the current window's rows, W[(i - w0) * d]
    for (uint32_t c0 = 0; c0 < m; c0 += std::min(slots, w_end - c0)) {
        if (c0 == w_end) {
            w0 = c0;
            w_end = std::min(m, w0 + per_window);
            if (rows_) W = (*rows_)(w0, w_end - w0);  // may throw (the problem's own error)
            else if (V) W = V + size_t(w0) * d_;
        }
        const uint32_t n = std::min(slots, w_end - c0);
        auto work = [&](int64_t kk) {
            const uint32_t k = uint32_t(kk), i = c0 + k;
            if (!active[i]) {
                status_[i] = Upload::kIdle;
                return;
            }
            const double* v = W ? W + size_t(i - w0) * d_ : V_.data() + size_t(k) * d_;
            if (!W) local_vector(i, V_.data() + size_t(k) * d_, ws_[k]);
            status_[i] = method_->worker(i, r, v, msgs_[k], dec_rows_[k], ws_[k]);
        };
        if (gil) {
            serial_for(n, work);  // as buffered_round: Python code that raised is not called again
        } else {
            // As the buffered path, every worker still takes its step after a failure, so the
            // state a failed round leaves behind does not depend on the chunking.
            try {
                parallel_for(n, work, per_worker * double(n));
            } catch (...) {
                if (!failed) failed = std::current_exception();
            }
        }
        if (failed) continue;
        chunk_senders_.clear();
        chunk_rows_.clear();
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t i = c0 + k;
            round_bits_[i] = upload_bits(i, msgs_[k]);
            if (status_[i] == Upload::kSent) {
                chunk_senders_.push_back(i);
                chunk_rows_.push_back(dec_rows_[k]);
            }
        }
        method_->stream_add(r, chunk_senders_.data(), chunk_rows_.data(), chunk_senders_.size(), step_.data());
    }
    if (failed) std::rethrow_exception(failed);
    for (uint32_t i = 0; i < m; ++i) count_upload(i);
    return method_->stream_finish(r, step_.data());
}

void Simulator::method_round(const std::vector<uint8_t>& active, const double* V) {
    const int64_t down = lean_ ? streamed_round(active, V) : buffered_round(active, V ? V : V_.data());
    // Server momentum (heavy ball on the step), then the broadcast.
    if (method_->momentum > 0.0) {
        for (uint64_t j = 0; j < d_; ++j) step_[j] = momentum_buf_[j] = method_->momentum * momentum_buf_[j] + step_[j];
    }
    double sq = 0.0;
    if (method_->downlink) {
        down_buf_.resize(d_);
        down_dec_.resize(d_);
        bool finite = true;
        for (uint64_t j = 0; j < d_; ++j) {
            down_buf_[j] = float(step_[j]);
            finite = finite && std::isfinite(down_buf_[j]);
        }
        if (!finite) throw NonFiniteError("non-finite server step");
        const Compressor& c = *method_->downlink;
        c.compress(down_buf_.data(), d_, derived(cfg_.key, kDownlinkSalt).with(uint32_t(t_), 0), down_msg_, server_ws_);
        c.decompress(down_msg_, down_dec_.data(), server_ws_);
        bits_down_ += down_msg_.bits();
        for (uint64_t j = 0; j < d_; ++j) {
            x_[j] -= double(down_dec_[j]);
            sq += double(down_dec_[j]) * double(down_dec_[j]);
        }
    } else {
        bits_down_ += down >= 0 ? uint64_t(down) : 32 * d_;
        for (uint64_t j = 0; j < d_; ++j) {
            x_[j] -= step_[j];
            sq += step_[j] * step_[j];
        }
    }
    step_sq_.push_back(sq);
    // Keep at least the window the method looks back over (LE-SignGD's D), trimming in bulk.
    const size_t keep = std::max<size_t>(512, method_->history_needed());
    if (step_sq_.size() > 2 * keep) step_sq_.erase(step_sq_.begin(), step_sq_.end() - long(keep));
    ++t_;
}

bool Simulator::due_for_log() const { return t_ % cfg_.log_every == 0 || t_ == cfg_.rounds; }

bool Simulator::record(double loss, double gns) {
    LogRow row;
    row.round = t_;
    row.loss = loss;
    row.grad_norm_sq = gns;
    row.bits_up = bits_up_;
    row.bits_down = bits_down_;
    row.uploads = uploads_;
    row.skipped = skipped_;
    log_.push_back(row);
    worker_bits_log_.push_back(worker_bits_);
    const std::vector<double> vw = method_->vote_weights();
    if (!vw.empty()) vote_log_.push_back(vw);
    bool finite = std::isfinite(loss) && std::isfinite(gns);
    for (double v : x_) finite = finite && std::isfinite(v);
    return finite;
}

bool Simulator::log_native() {
    const double loss = problem_->full_loss(x_.data());
    const double gns = problem_->full_grad(x_.data(), grad_buf_.data());
    return record(loss, gns);
}

bool Simulator::run(uint64_t n) {
    if (!problem_) fail("run() needs a native problem; use step_external() for Python problems");
    check_state_kept();
    if (log_.empty() && !log_native()) return false;  // round 0 = x0
    const uint32_t m = cfg_.m;
    for (uint64_t k = 0; k < n; ++k) {
        const std::vector<uint8_t> active = participation(t_);
        if (!lean_)  // the streamed path computes each chunk's vectors itself
            parallel_for(m, [&](int64_t ii) {
                const uint32_t i = uint32_t(ii);
                if (active[i]) local_vector(i, V_.data() + size_t(i) * d_, ws_[i]);
            }, work_);
        if (!method_round_or_stop(active, nullptr)) {
            // Diverged between logs: log this round (unless it already is) and stop.
            if (!due_for_log()) log_native();
            return false;
        }
        if (due_for_log() && !log_native()) return false;
    }
    return true;
}

bool Simulator::method_round_or_stop(const std::vector<uint8_t>& active, const double* V) {
    try {
        method_round(active, V);
        return true;
    } catch (const NonFiniteError&) {
        return false;
    } catch (const Float32Overflow&) {  // a compressor's scaled values left float32: diverged
        return false;
    }
}

bool Simulator::step_external(const double* V) {
    check_state_kept();
    const std::vector<uint8_t> active = participation(t_);
    return method_round_or_stop(active, V);  // read in place: no m x d copy
}

bool Simulator::step_external_rows(const RowSource& rows, uint32_t per_call) {
    check_state_kept();
    if (per_call == 0) fail("step_external_rows: per_call must be >= 1");
    const std::vector<uint8_t> active = participation(t_);
    if (!lean_) {  // the buffered path needs every row at once
        const double* V = rows(0, cfg_.m);
        return method_round_or_stop(active, V);
    }
    struct Reset {
        Simulator* s;
        ~Reset() { s->rows_ = nullptr; }
    } reset{this};
    rows_ = &rows;
    rows_per_call_ = per_call;
    return method_round_or_stop(active, nullptr);
}

bool Simulator::log_external(double loss, double gns) { return record(loss, gns); }

}  // namespace pyqsgd
