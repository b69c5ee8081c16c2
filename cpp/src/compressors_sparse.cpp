#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>

#include "pyqsgd/compressors/sparse.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

// ---- shared pieces --------------------------------------------------------------------------

uint64_t SparsityParam::resolve(uint64_t d) const {
    if (k > 0) return k;
    const double r = floor ? std::floor(ratio * double(d)) : std::floor(ratio * double(d) + 0.5);
    return std::max<uint64_t>(1, uint64_t(r));
}

void SparsityParam::check(uint64_t d, const char* who) const {
    const uint64_t kk = resolve(d);
    if (kk < 1 || kk > d)
        fail(std::string(who) + ": k must be in [1, d], got k=" + std::to_string(kk) + " for d=" + std::to_string(d));
}

std::string SparsityParam::text() const {
    if (k > 0) return "k=" + std::to_string(k);
    std::ostringstream os;
    os.precision(17);
    os << "ratio=" << ratio;
    if (floor) os << ", rounding='floor'";
    return os.str();
}

uint64_t index_bits(uint64_t k, uint64_t d) { return std::min<uint64_t>(k * bit_width_for(d), d); }

void encode_indices(const uint32_t* idx, uint64_t k, uint64_t d, Section& s) {
    const uint64_t nbits = index_bits(k, d);
    uint64_t* w = s.reset(nbits);
    if (nbits == d && k * bit_width_for(d) != d) {  // bitmap is strictly smaller
        for (uint64_t i = 0; i < k; ++i) w[idx[i] >> 6] |= uint64_t(1) << (idx[i] & 63);
        return;
    }
    const unsigned width = bit_width_for(d);
    // Blocks of 64 indices occupy exactly `width` words: disjoint, so threads may fill them.
    parallel_blocks(int64_t(k), [&](int64_t, int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) put_bits(w, uint64_t(i) * width, idx[i], width);
    });
}

void decode_indices(const Section& s, uint64_t k, uint64_t d, std::vector<uint32_t>& idx, const char* who) {
    const uint64_t nbits = index_bits(k, d);
    expect_bits(s, nbits, who);
    idx.resize(k);
    const uint64_t* w = s.words.data();
    if (nbits == d && k * bit_width_for(d) != d) {
        uint64_t n = 0;
        for (uint64_t wi = 0; wi < s.words.size(); ++wi) {
            uint64_t word = w[wi];
            while (word) {
                const unsigned b = unsigned(__builtin_ctzll(word));
                if (n == k) fail(std::string(who) + ": index bitmap has more than k entries (malformed message)");
                idx[n++] = uint32_t(wi * 64 + b);
                word &= word - 1;
            }
        }
        if (n != k) fail(std::string(who) + ": index bitmap has fewer than k entries (malformed message)");
        return;
    }
    const unsigned width = bit_width_for(d);
    int64_t prev = -1;
    for (uint64_t i = 0; i < k; ++i) {
        const uint64_t v = get_bits(w, i * width, width);
        if (v >= d || int64_t(v) <= prev)
            fail(std::string(who) + ": indices out of range or not increasing (malformed message)");
        idx[i] = uint32_t(v);
        prev = int64_t(v);
    }
}

void sample_subset(const Key& key, uint64_t d, uint64_t k, Workspace& ws, std::vector<uint32_t>& idx) {
    std::vector<uint32_t>& bitmap = ws.u(4);
    bitmap.assign((d + 31) / 32, 0);
    auto has = [&](uint64_t j) { return (bitmap[j >> 5] >> (j & 31)) & 1u; };
    auto set = [&](uint64_t j) { bitmap[j >> 5] |= 1u << (j & 31); };
    // Floyd: for j = d-k .. d-1 draw t uniform in [0, j]; take t, or j if t is taken. 64-bit
    // draw i of the stream decides step i, so the subset is a pure function of (key, d, k).
    // The draws are generated in bulk: 64-bit draw i is (lane 2(i%2) << 32 | lane 2(i%2)+1) of
    // Philox block i/2, i.e. 32-bit draws 2i and 2i+1 -- the same numbers draw_u64 returns.
    std::vector<uint32_t>& raw = ws.u(5);
    const uint64_t nblocks = ((k + 1) / 2 + 3) / 4 * 4;
    raw.resize(4 * nblocks);
    philox_fill(key, 0, nblocks, raw.data());
    for (uint64_t i = 0; i < k; ++i) {
        const uint64_t j = d - k + i;
        const uint64_t u = (uint64_t(raw[2 * i]) << 32) | raw[2 * i + 1];
        const uint64_t t = bounded(u, j + 1);
        set(has(t) ? j : t);
    }
    idx.resize(k);
    uint64_t n = 0;
    for (uint64_t wi = 0; wi < bitmap.size(); ++wi) {
        uint32_t word = bitmap[wi];
        while (word) {
            idx[n++] = uint32_t(wi * 32 + unsigned(__builtin_ctz(word)));
            word &= word - 1;
        }
    }
}

namespace {
// out[i] = x[idx[i]] * scale; throws when a scaled value overflows float32 (RandK's d/k can
// push a large finite x_j to Inf, which the receiver would reject).
void gather(const float* x, const std::vector<uint32_t>& idx, float scale, std::vector<float>& out, const char* who) {
    out.resize(idx.size());
    float m = 0.0f;
    for (size_t i = 0; i < idx.size(); ++i) {
        out[i] = x[idx[i]] * scale;
        m = std::max(m, std::fabs(out[i]));
    }
    if (!(m <= std::numeric_limits<float>::max()))
        fail_overflow(std::string(who) + ": (d/k) x_j overflows float32; rescale x");
}
void write_values(const std::vector<float>& v, Message& msg) {
    Section& s = msg.add(32 * v.size());
    if (!v.empty()) std::memcpy(s.words.data(), v.data(), v.size() * sizeof(float));
}
void read_values(SectionCursor& cur, uint64_t k, std::vector<float>& v, const char* who) {
    const Section& s = cur.next(who);
    expect_bits(s, 32 * k, who);
    v.resize(k);
    if (k) std::memcpy(v.data(), s.words.data(), k * sizeof(float));
    check_decoded_finite(v.data(), k, who);
}
}  // namespace

// ---- SparseStage ----------------------------------------------------------------------------

void SparseStage::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    Selection& sel = ws.child(0).sel;
    select(x, d, key, msg, ws, sel);
    if (!sel.values.empty()) write_values(sel.values, msg);
}

void SparseStage::decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                         Workspace& ws) const {
    Selection& sel = ws.child(0).sel;
    read_selection(msg, cur, d, key, ws, sel);
    const uint64_t k = sel.indices.size();
    if (k > 0) read_values(cur, k, sel.values, name().c_str());
    sel.values.resize(k);
    place_selection(sel, sel.values.data(), d, out);
}

// ---- TopK -----------------------------------------------------------------------------------

void TopK::select(const float* x, uint64_t d, const Key&, Message& msg, Workspace& ws, Selection& sel) const {
    const uint64_t k = p_.resolve(d);
    sel.dense = false;
    select_topk(x, d, k, ws, sel.indices, &sel.values);
    encode_indices(sel.indices.data(), k, d, msg.add(0));
}

void TopK::read_selection(const Message&, SectionCursor& cur, uint64_t d, const Key&, Workspace&,
                          Selection& sel) const {
    sel.dense = false;
    decode_indices(cur.next("TopK"), p_.resolve(d), d, sel.indices, "TopK");
}

Properties TopK::properties(uint64_t d) const {
    Properties p;
    p.unbiased = false;
    p.delta = double(p_.resolve(d)) / double(d);
    return p;
}

// ---- RandK ----------------------------------------------------------------------------------

void RandK::select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws, Selection& sel) const {
    const uint64_t k = p_.resolve(d);
    sel.dense = false;
    sample_subset(key, d, k, ws, sel.indices);
    if (!shared_seed_) encode_indices(sel.indices.data(), k, d, msg.add(0));
    gather(x, sel.indices, float(double(d) / double(k)), sel.values, "RandK");
}

void RandK::read_selection(const Message&, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                           Selection& sel) const {
    const uint64_t k = p_.resolve(d);
    sel.dense = false;
    if (shared_seed_)
        sample_subset(key, d, k, ws, sel.indices);
    else
        decode_indices(cur.next("RandK"), k, d, sel.indices, "RandK");
}

Properties RandK::properties(uint64_t d) const {
    Properties p;
    p.unbiased = true;
    p.omega = double(d) / double(p_.resolve(d)) - 1.0;
    return p;
}

}  // namespace pyqsgd
