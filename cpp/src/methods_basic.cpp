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

void Method::compress_vector(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded,
                             Workspace& ws) const {
    const uint64_t d = info_.d;
    std::vector<float>& buf = ws.f(0);
    buf.resize(d);
    bool finite = true;
    for (uint64_t j = 0; j < d; ++j) {
        buf[j] = float(v[j]);
        finite = finite && std::isfinite(buf[j]);
    }
    if (!finite) throw NonFiniteError("worker " + std::to_string(i) + ": non-finite vector at round " + std::to_string(r.t));
    const Compressor& c = comp(i);
    Workspace& cws = ws.child(0);
    c.compress(buf.data(), d, r.key.with(r.t, i), msg, cws);
    c.decompress(msg, decoded, cws);
}

// ---- DCGD -----------------------------------------------------------------------------------

Upload DCGD::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    compress_vector(i, r, v, msg, decoded, ws);
    return Upload::kSent;
}

int64_t DCGD::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                     const std::vector<Message>& msgs, double* step) {
    aggregate(status, decoded, msgs, [&](uint32_t i) { return est_coef(i); }, r.lr, step);
    return -1;
}

// ---- EF -------------------------------------------------------------------------------------

void EF::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    e_.assign(size_t(info.m) * info.d, 0.0);
}

Upload EF::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    double* e = e_.data() + size_t(i) * d;
    std::vector<double>& p = ws.f64(0);
    p.resize(d);
    for (uint64_t j = 0; j < d; ++j) p[j] = r.lr * v[j] + e[j];
    compress_vector(i, r, p.data(), msg, decoded, ws);
    for (uint64_t j = 0; j < d; ++j) e[j] = p[j] - double(decoded[j]);
    return Upload::kSent;
}

int64_t EF::server(const Round&, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) {
    aggregate(status, decoded, msgs, [&](uint32_t i) { return est_coef(i); }, 1.0, step);
    return -1;
}

NamedArrays EF::state() const { return {{"error", e_}}; }

void EF::load_state(const NamedArrays& s) { assign_state(s, {{"error", &e_}}); }

// ---- EF21 -----------------------------------------------------------------------------------

void EF21::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    gi_.assign(size_t(info.m) * info.d, 0.0);
    g_.assign(info.d, 0.0);
    started_.assign(info.m, 0);
}

Upload EF21::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    double* gi = gi_.data() + size_t(i) * d;
    std::vector<double>& diff = ws.f64(0);
    diff.resize(d);
    for (uint64_t j = 0; j < d; ++j) diff[j] = v[j] - gi[j];
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
    for (uint64_t j = 0; j < d; ++j) gi[j] += double(decoded[j]);
    return Upload::kSent;
}

int64_t EF21::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                     const std::vector<Message>& msgs, double* step) {
    // g stays the weighted mean of the workers' g_i: non-participants' g_i did not move.
    aggregate(status, decoded, msgs, [&](uint32_t i) { return info_.weights[i]; }, 1.0, step);
    for (uint64_t j = 0; j < info_.d; ++j) {
        g_[j] += step[j];
        step[j] = r.lr * g_[j];
    }
    return -1;
}

NamedArrays EF21::state() const { return {{"g_workers", gi_}, {"g", g_}}; }

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
    assign_state(rest, {{"g_workers", &gi_}, {"g", &g_}});
    for (uint32_t i = 0; i < info_.m; ++i) started_[i] = started[i] != 0.0;
}

// ---- DIANA ----------------------------------------------------------------------------------

void DIANA::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    if (!(alpha_ > 0.0 && alpha_ <= 1.0)) fail("DIANA: alpha must be in (0, 1], got " + std::to_string(alpha_));
    hi_.assign(size_t(info.m) * info.d, 0.0);
    h_.assign(info.d, 0.0);
    tmp_.assign(info.d, 0.0);
}

Upload DIANA::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    double* hi = hi_.data() + size_t(i) * d;
    std::vector<double>& diff = ws.f64(0);
    diff.resize(d);
    for (uint64_t j = 0; j < d; ++j) diff[j] = v[j] - hi[j];
    compress_vector(i, r, diff.data(), msg, decoded, ws);
    for (uint64_t j = 0; j < d; ++j) hi[j] += alpha_ * double(decoded[j]);
    return Upload::kSent;
}

int64_t DIANA::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                      const std::vector<Message>& msgs, double* step) {
    // The estimator goes through the aggregator; the shift h tracks the exact weighted mean of
    // the h_i whatever the aggregator, or it would drift away from the workers' shifts.
    aggregate(status, decoded, msgs, [&](uint32_t i) { return est_coef(i); }, 1.0, step);
    weighted_sum(status, decoded, [&](uint32_t i) { return info_.weights[i]; }, tmp_.data());
    for (uint64_t j = 0; j < info_.d; ++j) {
        step[j] = r.lr * (h_[j] + step[j]);
        h_[j] += alpha_ * tmp_[j];  // h stays the weighted mean of the h_i (no 1/p_i here)
    }
    return -1;
}

NamedArrays DIANA::state() const { return {{"h_workers", hi_}, {"h", h_}}; }

void DIANA::load_state(const NamedArrays& s) { assign_state(s, {{"h_workers", &hi_}, {"h", &h_}}); }

}  // namespace pyqsgd
