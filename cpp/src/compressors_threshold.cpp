#include "pyqsgd/compressors/threshold.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

Threshold::Threshold(double tau) : tau_(tau) {
    if (!(tau >= 0.0) || !std::isfinite(tau)) {
        std::ostringstream os;
        os.precision(17);
        os << "Threshold: tau must be finite and >= 0, got tau=" << tau;
        fail(os.str());
    }
}

std::string Threshold::name() const {
    std::ostringstream os;
    os.precision(17);
    os << "Threshold(tau=" << tau_ << ")";
    return os.str();
}

void select_threshold(const float* x, uint64_t d, double tau, Workspace& ws, std::vector<uint32_t>& idx) {
    // Pass 1: count per fixed block; pass 2: each block writes at its prefix offset.
    const int64_t nb = num_blocks(int64_t(d));
    std::vector<int64_t>& counts = ws.i64(0);
    counts.assign(size_t(nb) + 1, 0);
    auto keep = [&](uint64_t j) { return std::fabs(double(x[j])) >= tau; };
    parallel_blocks(int64_t(d), [&](int64_t b, int64_t lo, int64_t hi) {
        int64_t c = 0;
        for (int64_t j = lo; j < hi; ++j) c += keep(uint64_t(j));
        counts[size_t(b) + 1] = c;
    });
    for (int64_t b = 0; b < nb; ++b) counts[size_t(b) + 1] += counts[size_t(b)];
    idx.resize(size_t(counts[size_t(nb)]));
    parallel_blocks(int64_t(d), [&](int64_t b, int64_t lo, int64_t hi) {
        int64_t n = counts[size_t(b)];
        for (int64_t j = lo; j < hi; ++j)
            if (keep(uint64_t(j))) idx[size_t(n++)] = uint32_t(j);
    });
}

void Threshold::select(const float* x, uint64_t d, const Key&, Message& msg, Workspace& ws, Selection& sel) const {
    sel.dense = false;
    select_threshold(x, d, tau_, ws, sel.indices);
    const uint64_t k = sel.indices.size();
    msg.add(32).words[0] = k;
    if (k > 0) encode_indices(sel.indices.data(), k, d, msg.add(0));
    sel.values.resize(k);
    for (uint64_t i = 0; i < k; ++i) sel.values[i] = x[sel.indices[i]];
}

void Threshold::read_selection(const Message&, SectionCursor& cur, uint64_t d, const Key&, Workspace&,
                               Selection& sel) const {
    sel.dense = false;
    const Section& head = cur.next("Threshold");
    expect_bits(head, 32, "Threshold count");
    const uint64_t k = head.words[0] & 0xFFFFFFFFu;
    if (k > d)
        fail("Threshold: message keeps " + std::to_string(k) + " entries of a " + std::to_string(d) +
             "-vector (malformed message)");
    if (k == 0) {
        sel.indices.clear();
        return;
    }
    decode_indices(cur.next("Threshold"), k, d, sel.indices, "Threshold");
}

Properties Threshold::properties(uint64_t) const {
    Properties p;  // biased; only the absolute bound ||C(x) - x||^2 <= d tau^2 holds
    p.unbiased = false;
    return p;
}

}  // namespace pyqsgd
