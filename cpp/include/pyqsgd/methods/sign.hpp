// Sign-based methods (ALGORITHMS.md §4.1, §4.3): LE-SignGD (lazy aggregation + error feedback)
// and signSGD with majority / federated voting. EF-SignGD is EF with ScaledSign.
#pragma once
#include "pyqsgd/methods/method.hpp"

namespace pyqsgd {

// LE-SignGD: server and worker keep the worker's last-known gradient estimate gh_i. Worker i
// skips (1 flag bit) iff t >= D, its skip streak < t_bar and
//   ||g_i - gh_i||^2 <= xi / (D lr^2) * sum_{j=1..D} ||x^{t+1-j} - x^{t-j}||^2;
// otherwise it uploads c = ScaledSign(g_i - gh_i + e_i), e_i <- u - c, gh_i += c (d + 32 bits).
// The server steps lr * sum_i w_i gh_i.
class LESignSGD final : public Method {
   public:
    LESignSGD(uint32_t D, double xi, uint32_t t_bar);
    std::string name() const override { return "LESignSGD"; }
    void reset(const RunInfo& info, const double* x0) override;
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    uint64_t skip_bits() const override { return 1; }
    size_t history_needed() const override { return D_; }
    NamedArrays state() const override;
    void load_state(const NamedArrays& s) override;
    std::vector<OwnedArray> take_state() override;
    bool streams() const override { return true; }  // the server sums w_i c_i whatever the aggregator
    void stream_begin(const Round& r, double* step) override;
    void stream_add(const Round& r, const uint32_t* senders, const float* const* rows, size_t n, double* step) override;
    int64_t stream_finish(const Round& r, double* step) override;

   private:
    uint32_t D_, t_bar_;
    double xi_;
    StateRows gh_, e_;  // m x d
    std::vector<double> G_, streak_;
};

// Federated-voting options; MV is the special case "no learning" (weights all 1).
struct VoteConfig {
    bool federated = false;
    double W = 10.0;          // weight clip
    double lambda = 1.0;      // forgetting factor in (0, 1]
    uint32_t t_in = 100;      // plain MV rounds before weighted voting
    double eps = 1e-5;
    bool per_coordinate = false;
    bool oracle = false;      // weights from known batch sizes instead of learned ones
    bool leave_one_out = false;  // estimate agreement against the other workers' vote
    double worker_momentum = 0.0;  // Signum-style: workers send sign(beta m + (1 - beta) g)
    // The authors' signSGD-FV: per-(worker, coordinate) weights, a tied vote counts as a
    // disagreement for every worker (N_ij += 1 every round), workers send TernarySign
    // (sign(0) = 0: d bits, 2d when some coordinate is exactly zero). Implies per_coordinate.
    bool authors = false;
};

// signSGD-MV / -FV: workers send sign(g_i) (d bits; TernarySign under `authors`); server
// x <- x - lr * vote; downlink is the vote (d bits, plus a d-bit zero mask in rounds with ties).
class SignVote final : public Method {
   public:
    explicit SignVote(VoteConfig cfg);
    std::string name() const override { return cfg_.federated ? "SignSGDFV" : "SignSGDMV"; }
    void reset(const RunInfo& info, const double* x0) override;
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    NamedArrays state() const override;
    void load_state(const NamedArrays& s) override;
    std::vector<double> vote_weights() const override;
    std::vector<OwnedArray> take_state() override { return take_rows({{"momentum", &mom_}}); }

   private:
    void update_weights();
    VoteConfig cfg_;
    StateRows mom_;                  // m x d worker momentum (m = 0 rows without worker_momentum)
    std::vector<double> N_, A_;      // counters: N per worker; A per worker (or m x d)
    std::vector<double> w_;          // current weights: m (or m x d)
    std::vector<float> vote_;
    std::vector<double> sums_;
    std::vector<uint8_t> agree_;
};

}  // namespace pyqsgd
