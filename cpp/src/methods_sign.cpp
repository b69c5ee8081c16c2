#include <algorithm>
#include <cmath>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/methods/sign.hpp"
#include "pyqsgd/vote.hpp"

namespace pyqsgd {

// ---- LE-SignGD ------------------------------------------------------------------------------

LESignSGD::LESignSGD(uint32_t D, double xi, uint32_t t_bar) : D_(D), t_bar_(t_bar), xi_(xi) {
    if (D < 1) fail("LESignSGD: D must be >= 1, got D=" + std::to_string(D));
    if (!(xi >= 0.0) || !std::isfinite(xi)) fail("LESignSGD: xi must be finite and >= 0");
    comps_ = {std::make_shared<ScaledSign>()};
}

void LESignSGD::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    gh_.assign(info.state_f32, info.m, info.d);
    e_.assign(info.state_f32, info.m, info.d);
    G_.assign(info.d, 0.0);
    streak_.assign(info.m, 0.0);
}

Upload LESignSGD::worker(uint32_t i, const Round& r, const double* g, Message& msg, float* decoded, Workspace& ws) {
    const uint64_t d = info_.d;
    if (r.t >= D_ && streak_[i] < double(t_bar_)) {
        // LAG-WK rule: the innovation is small relative to the recent movement of x.
        const std::vector<double>& hist = *r.step_sq;
        double moved = 0.0;
        const size_t n = std::min<size_t>(D_, hist.size());
        for (size_t k = 0; k < n; ++k) moved += hist[hist.size() - 1 - k];
        const double innov = gh_.with_row(i, [&](const auto* gh) {
            double sq = 0.0;
            for (uint64_t j = 0; j < d; ++j) sq += (g[j] - double(gh[j])) * (g[j] - double(gh[j]));
            return sq;
        });
        if (innov <= xi_ / (double(D_) * r.lr * r.lr) * moved) {
            streak_[i] += 1.0;
            return Upload::kSkipped;
        }
    }
    std::vector<double>& u = ws.f64(0);
    u.resize(d);
    gh_.with_row(i, [&](auto* gh) {
        e_.with_row(i, [&](auto* e) {
            for (uint64_t j = 0; j < d; ++j) u[j] = g[j] - double(gh[j]) + double(e[j]);
            compress_vector(i, r, u.data(), msg, decoded, ws);
            for (uint64_t j = 0; j < d; ++j) {
                e[j] = u[j] - double(decoded[j]);
                gh[j] = double(gh[j]) + double(decoded[j]);
            }
        });
    });
    streak_[i] = 0.0;
    return Upload::kSent;
}

int64_t LESignSGD::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                          const std::vector<Message>&, double* step) {
    // The server's copy of each gh_i moves by the decoded innovation; skipped ones stay.
    return server_by_stream(r, status, decoded, step);
}

void LESignSGD::stream_begin(const Round&, double* step) { std::fill(step, step + info_.d, 0.0); }

void LESignSGD::stream_add(const Round&, const uint32_t* senders, const float* const* rows, size_t n, double* step) {
    accumulate(senders, rows, n, [&](uint32_t i) { return info_.weights[i]; }, step);
}

int64_t LESignSGD::stream_finish(const Round& r, double* step) {
    for (uint64_t j = 0; j < info_.d; ++j) {
        G_[j] += step[j];
        step[j] = r.lr * G_[j];
    }
    return -1;
}

NamedArrays LESignSGD::state() const {
    return {{"g_hat", gh_.to_double()}, {"error", e_.to_double()}, {"g_hat_mean", G_}, {"skip_streak", streak_}};
}

std::vector<OwnedArray> LESignSGD::take_state() { return take_rows({{"g_hat", &gh_}, {"error", &e_}}); }

void LESignSGD::load_state(const NamedArrays& s) {
    std::vector<double> gh(gh_.size()), e(e_.size());
    assign_state(s, {{"g_hat", &gh}, {"error", &e}, {"g_hat_mean", &G_}, {"skip_streak", &streak_}});
    gh_.from_double(gh);
    e_.from_double(e);
}

// ---- signSGD-MV / FV ------------------------------------------------------------------------

SignVote::SignVote(VoteConfig cfg) : cfg_(cfg) {
    if (!(cfg.W > 0.0) || !std::isfinite(cfg.W)) fail("SignSGDFV: W must be > 0, got W=" + std::to_string(cfg.W));
    if (!(cfg.lambda > 0.0 && cfg.lambda <= 1.0))
        fail("SignSGDFV: lam must be in (0, 1], got lam=" + std::to_string(cfg.lambda));
    if (!(cfg.eps > 0.0)) fail("SignSGDFV: eps must be > 0");
    if (!(cfg.worker_momentum >= 0.0 && cfg.worker_momentum < 1.0)) fail("worker_momentum must be in [0, 1)");
    if (cfg.authors) {
        if (!cfg.federated) fail("SignSGDMV: authors_compat is a federated-voting option");
        if (cfg.oracle || cfg.leave_one_out)
            fail("SignSGDFV: authors_compat learns weights from agreement with the vote; it excludes oracle and "
                 "leave_one_out");
        cfg_.per_coordinate = true;
        comps_ = {std::make_shared<TernarySign>()};
    } else {
        comps_ = {std::make_shared<Sign>()};
    }
}

void SignVote::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    const size_t m = info.m, d = info.d;
    mom_.assign(info.state_f32, cfg_.worker_momentum > 0.0 ? m : 0, d);
    N_.assign(cfg_.per_coordinate ? m * d : m, 0.0);
    A_.assign(cfg_.per_coordinate ? m * d : m, 0.0);
    w_.assign(cfg_.per_coordinate ? m * d : m, 0.0);
    vote_.assign(d, 0.0f);
    sums_.assign(d, 0.0);
    agree_.assign(d, 0);
    if (cfg_.oracle) {
        // Small-SNR limit of ln((1 - p_i)/p_i): proportional to sqrt(B_i), scaled into [0, W].
        if (info.batch.size() != m) fail("SignSGDFV: oracle weights need the workers' batch sizes");
        double mx = 0.0;
        for (double b : info.batch) mx = std::max(mx, std::sqrt(b));
        for (size_t i = 0; i < m; ++i) {
            const double wi = cfg_.W * std::sqrt(info.batch[i]) / mx;
            if (cfg_.per_coordinate)
                std::fill(w_.begin() + long(i * d), w_.begin() + long((i + 1) * d), wi);
            else
                w_[i] = wi;
        }
    }
}

Upload SignVote::worker(uint32_t i, const Round& r, const double* g, Message& msg, float* decoded, Workspace& ws) {
    if (cfg_.worker_momentum > 0.0) {
        const uint64_t d = info_.d;
        const double b = cfg_.worker_momentum;
        // In place, and compressed from the stored row (float32 on the wire either way): no
        // d-sized scratch, which the buffered path would keep once per worker.
        mom_.with_row(i, [&](auto* mi) {
            for (uint64_t j = 0; j < d; ++j) mi[j] = b * double(mi[j]) + (1.0 - b) * g[j];
            compress_vector(i, r, mi, msg, decoded, ws);
        });
    } else {
        compress_vector(i, r, g, msg, decoded, ws);
    }
    return Upload::kSent;
}

void SignVote::update_weights() {
    const size_t m = info_.m, d = info_.d;
    auto weight = [&](double a, double n) {
        const double p = 1.0 - (a + cfg_.eps) / (n + 2.0 * cfg_.eps);
        return std::clamp(std::log((1.0 - p) / p), -cfg_.W, cfg_.W);
    };
    for (size_t i = 0; i < m; ++i) {
        if (cfg_.per_coordinate)
            for (size_t j = 0; j < d; ++j) w_[i * d + j] = weight(A_[i * d + j], N_[i * d + j]);
        else
            w_[i] = weight(A_[i], N_[i]);
    }
}

int64_t SignVote::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>&,
                         const std::vector<Message>& msgs, double* step) {
    const uint32_t m = info_.m;
    const uint64_t d = info_.d;
    std::vector<const Message*> voters;
    std::vector<uint32_t> who;
    for (uint32_t i = 0; i < m; ++i)
        if (status[i] == Upload::kSent) {
            voters.push_back(&msgs[i]);
            who.push_back(i);
        }
    if (voters.empty()) {
        std::fill(step, step + d, 0.0);
        return 0;  // nobody voted: no broadcast
    }
    // Weighted voting after the T_in majority rounds, and only once some voter has counts:
    // before that every learned weight is 0 and the weighted vote would be all ties.
    bool counted = cfg_.oracle;
    for (size_t k = 0; k < who.size() && !counted; ++k) {
        const size_t i = who[k];
        if (cfg_.per_coordinate) {
            for (uint64_t j = 0; j < d && !counted; ++j) counted = N_[i * d + j] > 0.0;
        } else {
            counted = N_[i] > 0.0;
        }
    }
    const bool weighted = cfg_.federated && counted && (cfg_.oracle || r.t >= cfg_.t_in);
    uint64_t ties;
    std::vector<double> w(voters.size(), 1.0), W;  // weights of this round's voters
    if (!weighted) {
        ties = sign_vote(voters, nullptr, d, vote_.data(), sums_.data());
    } else if (cfg_.per_coordinate) {
        W.resize(voters.size() * d);
        for (size_t k = 0; k < who.size(); ++k)
            std::copy(w_.begin() + long(size_t(who[k]) * d), w_.begin() + long((size_t(who[k]) + 1) * d),
                      W.begin() + long(k * d));
        ties = sign_vote_per_coordinate(voters, W.data(), d, vote_.data(), sums_.data());
    } else {
        for (size_t k = 0; k < who.size(); ++k) w[k] = w_[who[k]];
        ties = sign_vote(voters, w.data(), d, vote_.data(), sums_.data());
    }
    if (cfg_.federated && !cfg_.oracle) {
        // Agreement with the server's own vote (or, leave-one-out, with the others' vote)
        // estimates each worker's sign-error rate; tied reference coordinates are not counted.
        const double lam = cfg_.lambda;
        const double one = 1.0;
        for (size_t k = 0; k < who.size(); ++k) {
            const size_t i = who[k];
            const double* wk = weighted ? (cfg_.per_coordinate ? W.data() + k * d : &w[k]) : &one;
            const size_t stride = weighted && cfg_.per_coordinate ? 1 : 0;
            const AgreementCount c = cfg_.leave_one_out
                                         ? count_agreement_loo(*voters[k], sums_.data(), wk, stride, d, agree_.data())
                                         : count_agreement(*voters[k], vote_.data(), d, agree_.data(),
                                                           cfg_.authors);
            if (cfg_.per_coordinate) {
                for (uint64_t j = 0; j < d; ++j) {
                    N_[i * d + j] = lam * N_[i * d + j] + double(agree_[j] != kTie);
                    A_[i * d + j] = lam * A_[i * d + j] + double(agree_[j] == kAgree);
                }
            } else {
                N_[i] = lam * N_[i] + double(c.counted);
                A_[i] = lam * A_[i] + double(c.agree);
            }
        }
        update_weights();
    }
    for (uint64_t j = 0; j < d; ++j) step[j] = r.lr * double(vote_[j]);
    return int64_t(vote_bits(d, ties));
}

NamedArrays SignVote::state() const {
    NamedArrays out;
    if (mom_.size()) out.push_back({"momentum", mom_.to_double()});
    if (cfg_.federated) {
        out.push_back({"N", N_});
        out.push_back({"A", A_});
        out.push_back({"weights", w_});
    }
    return out;
}

void SignVote::load_state(const NamedArrays& s) {
    std::vector<std::pair<std::string, std::vector<double>*>> slots;
    std::vector<double> mom(mom_.size());
    if (mom_.size()) slots.push_back({"momentum", &mom});
    if (cfg_.federated) slots.insert(slots.end(), {{"N", &N_}, {"A", &A_}, {"weights", &w_}});
    assign_state(s, slots);
    if (mom_.size()) mom_.from_double(mom);
}

std::vector<double> SignVote::vote_weights() const {
    if (!cfg_.federated) return {};
    const size_t m = info_.m, d = info_.d;
    if (!cfg_.per_coordinate) return w_;
    std::vector<double> out(m, 0.0);
    for (size_t i = 0; i < m; ++i) {
        for (size_t j = 0; j < d; ++j) out[i] += w_[i * d + j];
        out[i] /= double(d);
    }
    return out;
}

}  // namespace pyqsgd
