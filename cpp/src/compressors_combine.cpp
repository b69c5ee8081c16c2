#include <cmath>

#include "pyqsgd/compressors/combine.hpp"

namespace pyqsgd {

// ---- chain ----------------------------------------------------------------------------------

Chain::Chain(CompressorPtr a, CompressorPtr b) : a_(std::move(a)), b_(std::move(b)) {
    if (!a_ || !b_) fail("chain: both stages are required");
    sa_ = a_->as_selector();
    if (!sa_)
        fail("chain: the first stage must keep a sub-vector (TopK, RandK, Threshold, Truncate, Identity, or a Python compressor with select/selection), got " +
             a_->name());
}

void Chain::check(uint64_t d) const {
    a_->check(d);
    const uint64_t kept = sa_->kept(d);
    b_->check(kept ? kept : d);
}

void Chain::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    Selection& sel = ws.sel;
    sa_->select(x, d, key.child(0), msg, ws.child(0), sel);
    const uint64_t n = sel.values.size();
    if (n == 0) return;  // nothing kept (data-dependent stages): b sends nothing
    b_->check(n);
    b_->encode(sel.values.data(), n, key.child(1), msg, ws.child(1));
}

void Chain::decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                   Workspace& ws) const {
    Selection& sel = ws.sel;
    sa_->read_selection(msg, cur, d, key.child(0), ws.child(0), sel);
    const uint64_t n = sel.dense ? d : sel.indices.size();
    sel.values.resize(n);
    if (n > 0) {
        b_->check(n);
        b_->decode(msg, cur, n, key.child(1), sel.values.data(), ws.child(1));
    }
    place_selection(sel, sel.values.data(), d, out);
}

Properties Chain::properties(uint64_t d) const {
    const Properties pa = a_->properties(d);
    const uint64_t kept = sa_->kept(d);
    // b's constants grow with its dimension, so d bounds a data-dependent kept size.
    const Properties pb = b_->properties(kept ? kept : d);
    // An exact first stage (Identity) passes the whole vector on: chain(Identity, b) is b.
    if (pa.unbiased && pa.omega == 0.0) return pb;
    Properties p;
    p.unbiased = pa.unbiased && pb.unbiased;
    if (p.unbiased) {
        // E||b(v) - v||^2 <= wb E||v||^2 and E||v||^2 = (1 + wa)||x||^2.
        p.omega = (1.0 + pa.omega) * (1.0 + pb.omega) - 1.0;
    } else if (!pa.unbiased && !std::isnan(pa.delta)) {
        // ||x - T||^2 + E||b(T) - T||^2 <= ||x||^2 - c ||T||^2 with c = 1 - wb (unbiased b, wb < 1)
        // or c = delta_b (contractive b); ||T||^2 >= delta_a ||x||^2 for a selecting stage.
        double c = std::nan("");
        if (pb.unbiased && pb.omega < 1.0) c = 1.0 - pb.omega;
        if (!pb.unbiased && !std::isnan(pb.delta)) c = pb.delta;
        if (!std::isnan(c)) p.delta = pa.delta * c;
    }
    return p;
}

// ---- induced --------------------------------------------------------------------------------

Induced::Induced(CompressorPtr c1, CompressorPtr c2) : c1_(std::move(c1)), c2_(std::move(c2)) {
    if (!c1_ || !c2_) fail("induced: both compressors are required");
    if (!c2_->unbiased()) fail("induced: the second compressor must be unbiased, got " + c2_->name());
}

void Induced::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    const size_t first = msg.size();
    c1_->encode(x, d, key.child(0), msg, ws.child(0));
    // Decode what C1 sent (exactly what the receiver will see) to form the residual.
    std::vector<float>& c1x = ws.f(0);
    c1x.resize(d);
    SectionCursor cur(msg, first);
    c1_->decode(msg, cur, d, key.child(0), c1x.data(), ws.child(0));
    std::vector<float>& r = ws.f(1);
    r.resize(d);
    for (uint64_t j = 0; j < d; ++j) r[j] = x[j] - c1x[j];
    c2_->encode(r.data(), d, key.child(1), msg, ws.child(1));
}

void Induced::decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                     Workspace& ws) const {
    c1_->decode(msg, cur, d, key.child(0), out, ws.child(0));
    std::vector<float>& r = ws.f(1);
    r.resize(d);
    c2_->decode(msg, cur, d, key.child(1), r.data(), ws.child(1));
    for (uint64_t j = 0; j < d; ++j) out[j] += r[j];
    // Two finite parts can still overflow (only a corrupted message gets there).
    check_decoded_finite(out, d, "induced");
}

Properties Induced::properties(uint64_t d) const {
    const Properties p1 = c1_->properties(d), p2 = c2_->properties(d);
    Properties p;
    p.unbiased = true;
    if (p1.unbiased && !std::isnan(p1.omega) && p1.omega == 0.0) {
        p.omega = 0.0;  // C1 exact: residual is zero
    } else if (!std::isnan(p1.delta)) {
        p.omega = p2.omega * (1.0 - p1.delta);  // E||x - C1(x)||^2 <= (1 - delta1)||x||^2
    } else if (p1.unbiased && !std::isnan(p1.omega)) {
        p.omega = p2.omega * p1.omega;  // E||x - C1(x)||^2 <= omega1 ||x||^2
    }
    return p;
}

}  // namespace pyqsgd
