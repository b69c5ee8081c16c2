#include <algorithm>
#include <cmath>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/methods/basic.hpp"

namespace pyqsgd {

// ---- Method base ----------------------------------------------------------------------------

void Method::reset(const RunInfo& info, const double*) {
    info_ = info;
    if (comps_.empty()) fail(name() + ": a compressor is required");
    if (comps_.size() != 1 && comps_.size() != info.m)
        fail(name() + ": got " + std::to_string(comps_.size()) + " compressors for " + std::to_string(info.m) +
             " workers; give one compressor, or one per worker");
    for (const auto& c : comps_) c->check(info.d);
    if (downlink) downlink->check(info.d);
}

void Method::assign_state(const NamedArrays& s,
                          const std::vector<std::pair<std::string, std::vector<double>*>>& slots) {
    for (const auto& [name, v] : s) {
        std::vector<double>* dst = nullptr;
        for (const auto& [slot, p] : slots)
            if (slot == name) dst = p;
        if (!dst) fail(this->name() + ": load_state: unknown state array '" + name + "'");
        if (v.size() != dst->size())
            fail(this->name() + ": load_state: '" + name + "' has " + std::to_string(v.size()) +
                 " entries, expected " + std::to_string(dst->size()) + " (saved for another d or m?)");
    }
    for (const auto& [slot, p] : slots) {
        bool found = false;
        for (const auto& [name, v] : s)
            if (name == slot) {
                *p = v;
                found = true;
            }
        if (!found) fail(this->name() + ": load_state: missing state array '" + slot + "'");
    }
}

std::vector<OwnedArray> Method::take_state() {
    std::vector<OwnedArray> out;
    for (auto& [name, v] : state()) {
        OwnedArray a;
        a.name = name;
        a.f64 = std::move(v);
        out.push_back(std::move(a));
    }
    return out;
}

std::vector<OwnedArray> Method::take_rows(const std::vector<std::pair<std::string, StateRows*>>& rows) {
    std::vector<OwnedArray> moved;
    for (const auto& [name, r] : rows) {
        OwnedArray a;
        a.name = name;
        a.f32 = r->is_f32();
        if (a.f32)
            a.f32_data = r->take_f32();
        else
            a.f64 = r->take_f64();
        moved.push_back(std::move(a));
    }
    // The other arrays (small: d or m entries) are copied, in state()'s order (the moved rows
    // keep their shape, so state() still lists them, now without a copy: their storage is gone).
    std::vector<OwnedArray> out;
    for (auto& [name, v] : state()) {
        bool found = false;
        for (auto& a : moved)
            if (a.name == name) {
                out.push_back(std::move(a));
                found = true;
            }
        if (found) continue;
        OwnedArray a;
        a.name = name;
        a.f64 = std::move(v);
        out.push_back(std::move(a));
    }
    return out;
}

int64_t Method::server_by_stream(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                                 double* step) {
    stream_senders_.clear();
    stream_rows_.clear();
    for (uint32_t i = 0; i < info_.m; ++i)
        if (status[i] == Upload::kSent) {
            stream_senders_.push_back(i);
            stream_rows_.push_back(decoded[i]);
        }
    stream_begin(r, step);
    stream_add(r, stream_senders_.data(), stream_rows_.data(), stream_senders_.size(), step);
    return stream_finish(r, step);
}

namespace {
template <class T>
void compress_as_float32(const Compressor& c, uint32_t i, const Round& r, const T* v, uint64_t d, Message& msg,
                         float* decoded, Workspace& ws) {
    std::vector<float>& buf = ws.f(0);
    buf.resize(d);
    bool finite = true;
    for (uint64_t j = 0; j < d; ++j) {
        buf[j] = float(v[j]);
        finite = finite && std::isfinite(buf[j]);
    }
    if (!finite) throw NonFiniteError("worker " + std::to_string(i) + ": non-finite vector at round " + std::to_string(r.t));
    Workspace& cws = ws.child(0);
    c.compress(buf.data(), d, r.key.with(r.t, i), msg, cws);
    c.decompress(msg, decoded, cws);
}
}  // namespace

void Method::compress_vector(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded,
                             Workspace& ws) const {
    compress_as_float32(comp(i), i, r, v, info_.d, msg, decoded, ws);
}

void Method::compress_vector(uint32_t i, const Round& r, const float* v, Message& msg, float* decoded,
                             Workspace& ws) const {
    compress_as_float32(comp(i), i, r, v, info_.d, msg, decoded, ws);
}

// ---- DCGD -----------------------------------------------------------------------------------

Upload DCGD::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    compress_vector(i, r, v, msg, decoded, ws);
    return Upload::kSent;
}

int64_t DCGD::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                     const std::vector<Message>& msgs, double* step) {
    if (!combiner) return server_by_stream(r, status, decoded, step);
    aggregate(status, decoded, msgs, [&](uint32_t i) { return est_coef(i); }, r.lr, step);
    return -1;
}

void DCGD::stream_begin(const Round&, double* step) { std::fill(step, step + info_.d, 0.0); }

void DCGD::stream_add(const Round& r, const uint32_t* senders, const float* const* rows, size_t n, double* step) {
    accumulate(senders, rows, n, [&](uint32_t i) { return r.lr * est_coef(i); }, step);
}

// ---- EF -------------------------------------------------------------------------------------

void EF::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    e_.assign(info.state_f32, info.m, info.d);
}

Upload EF::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    std::vector<double>& p = ws.f64(0);
    p.resize(d);
    e_.with_row(i, [&](auto* e) {
        for (uint64_t j = 0; j < d; ++j) p[j] = r.lr * v[j] + double(e[j]);
        compress_vector(i, r, p.data(), msg, decoded, ws);
        for (uint64_t j = 0; j < d; ++j) e[j] = p[j] - double(decoded[j]);
    });
    return Upload::kSent;
}

int64_t EF::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) {
    if (!combiner) return server_by_stream(r, status, decoded, step);
    aggregate(status, decoded, msgs, [&](uint32_t i) { return est_coef(i); }, 1.0, step);
    return -1;
}

void EF::stream_begin(const Round&, double* step) { std::fill(step, step + info_.d, 0.0); }

void EF::stream_add(const Round&, const uint32_t* senders, const float* const* rows, size_t n, double* step) {
    accumulate(senders, rows, n, [&](uint32_t i) { return 1.0 * est_coef(i); }, step);
}

NamedArrays EF::state() const { return {{"error", e_.to_double()}}; }

void EF::load_state(const NamedArrays& s) {
    std::vector<double> e(e_.size());
    assign_state(s, {{"error", &e}});
    e_.from_double(e);
}

// ---- EF21 -----------------------------------------------------------------------------------

void EF21::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    gi_.assign(info.state_f32, info.m, info.d);
    g_.assign(info.d, 0.0);
    started_.assign(info.m, 0);
}

Upload EF21::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    std::vector<double>& diff = ws.f64(0);
    diff.resize(d);
    gi_.with_row(i, [&](const auto* gi) {
        for (uint64_t j = 0; j < d; ++j) diff[j] = v[j] - double(gi[j]);
    });
    if (exact_init_ && !started_[i]) {
        // First upload uncompressed: g_i^0 = grad f_i(x^0) (up to float32 on the wire).
        static const Identity exact;
        std::vector<float>& buf = ws.f(0);
        buf.resize(d);
        for (uint64_t j = 0; j < d; ++j) {
            buf[j] = float(diff[j]);
            if (!std::isfinite(buf[j])) throw NonFiniteError("EF21: non-finite first gradient");
        }
        exact.compress(buf.data(), d, r.key.with(r.t, i), msg, ws.child(0));
        exact.decompress(msg, decoded, ws.child(0));
    } else {
        compress_vector(i, r, diff.data(), msg, decoded, ws);
    }
    started_[i] = 1;
    gi_.with_row(i, [&](auto* gi) {
        for (uint64_t j = 0; j < d; ++j) gi[j] = double(gi[j]) + double(decoded[j]);
    });
    return Upload::kSent;
}

int64_t EF21::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                     const std::vector<Message>& msgs, double* step) {
    // g stays the weighted mean of the workers' g_i: non-participants' g_i did not move.
    if (!combiner) return server_by_stream(r, status, decoded, step);
    aggregate(status, decoded, msgs, [&](uint32_t i) { return info_.weights[i]; }, 1.0, step);
    return stream_finish(r, step);
}

void EF21::stream_begin(const Round&, double* step) { std::fill(step, step + info_.d, 0.0); }

void EF21::stream_add(const Round&, const uint32_t* senders, const float* const* rows, size_t n, double* step) {
    accumulate(senders, rows, n, [&](uint32_t i) { return 1.0 * info_.weights[i]; }, step);
}

int64_t EF21::stream_finish(const Round& r, double* step) {
    for (uint64_t j = 0; j < info_.d; ++j) {
        g_[j] += step[j];
        step[j] = r.lr * g_[j];
    }
    return -1;
}

NamedArrays EF21::state() const { return {{"g_workers", gi_.to_double()}, {"g", g_}}; }

void EF21::load_state(const NamedArrays& s) {
    // Optional "started" (one flag per worker) matters only with exact_init; by default a
    // restored run counts every worker as started (a checkpoint is taken after some rounds).
    NamedArrays rest;
    std::vector<double> started(info_.m, 1.0);
    for (const auto& kv : s) {
        if (kv.first == "started") {
            if (kv.second.size() != info_.m) fail("EF21: load_state: 'started' needs one entry per worker");
            started = kv.second;
        } else {
            rest.push_back(kv);
        }
    }
    std::vector<double> gi(gi_.size());
    assign_state(rest, {{"g_workers", &gi}, {"g", &g_}});
    gi_.from_double(gi);
    for (uint32_t i = 0; i < info_.m; ++i) started_[i] = started[i] != 0.0;
}

// ---- DIANA ----------------------------------------------------------------------------------

void DIANA::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    if (!(alpha_ > 0.0 && alpha_ <= 1.0)) fail("DIANA: alpha must be in (0, 1], got " + std::to_string(alpha_));
    hi_.assign(info.state_f32, info.m, info.d);
    h_.assign(info.d, 0.0);
    tmp_.assign(info.d, 0.0);
}

Upload DIANA::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    std::vector<double>& diff = ws.f64(0);
    diff.resize(d);
    hi_.with_row(i, [&](auto* hi) {
        for (uint64_t j = 0; j < d; ++j) diff[j] = v[j] - double(hi[j]);
        compress_vector(i, r, diff.data(), msg, decoded, ws);
        for (uint64_t j = 0; j < d; ++j) hi[j] = double(hi[j]) + alpha_ * double(decoded[j]);
    });
    return Upload::kSent;
}

int64_t DIANA::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                      const std::vector<Message>& msgs, double* step) {
    // The estimator goes through the aggregator; the shift h tracks the exact weighted mean of
    // the h_i whatever the aggregator, or it would drift away from the workers' shifts.
    if (!combiner) return server_by_stream(r, status, decoded, step);
    aggregate(status, decoded, msgs, [&](uint32_t i) { return est_coef(i); }, 1.0, step);
    weighted_sum(status, decoded, [&](uint32_t i) { return info_.weights[i]; }, tmp_.data());
    return stream_finish(r, step);
}

void DIANA::stream_begin(const Round&, double* step) {
    std::fill(step, step + info_.d, 0.0);
    std::fill(tmp_.begin(), tmp_.end(), 0.0);
}

void DIANA::stream_add(const Round&, const uint32_t* senders, const float* const* rows, size_t n, double* step) {
    accumulate(senders, rows, n, [&](uint32_t i) { return 1.0 * est_coef(i); }, step);
    accumulate(senders, rows, n, [&](uint32_t i) { return info_.weights[i]; }, tmp_.data());
}

int64_t DIANA::stream_finish(const Round& r, double* step) {
    for (uint64_t j = 0; j < info_.d; ++j) {
        step[j] = r.lr * (h_[j] + step[j]);
        h_[j] += alpha_ * tmp_[j];  // h stays the weighted mean of the h_i (no 1/p_i here)
    }
    return -1;
}

NamedArrays DIANA::state() const { return {{"h_workers", hi_.to_double()}, {"h", h_}}; }

void DIANA::load_state(const NamedArrays& s) {
    std::vector<double> hi(hi_.size());
    assign_state(s, {{"h_workers", &hi}, {"h", &h_}});
    hi_.from_double(hi);
}

}  // namespace pyqsgd
