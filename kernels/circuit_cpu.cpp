// Fused CPU kernel for layerized circuits in log space (forward values and top-down adjoints).
//
// Built just in time by constraintc/circuit/cpu_kernel.py (g++ -O3 -fopenmp, cached per user) and
// called through ctypes on torch data pointers, so torch is never a build requirement. The row
// layout, the edge arrays and the meaning of the adjoints are those of
// constraintc/circuit/layers.py and torch_ref.py; this file is a faster evaluation of the same
// arithmetic, checked against torch_ref in tests/test_kernels_cpu.py.
//
// Why it is faster than the torch path: each node's children are reduced in registers over a tile
// of the batch (no [edges, batch] gather tensor is materialised), logsumexp is computed online in
// one pass, and float32 exp/log are branch-free polynomials that the compiler vectorises (with
// -inf handled exactly: exp(-inf) = 0). No -ffast-math: it would assume no infinities.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <algorithm>
#include <atomic>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int64_t TILE = 64;  // the widest tile (batch columns) the kernel takes

inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, 4); return i; }

// exp(x) for x <= 0 (or -inf): Cephes expf polynomial, ~1 ulp; results below the smallest
// normal float flush to 0, which is below float32 resolution next to the max term (1).
inline float exp_nonpos(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    // round to nearest by the 1.5 * 2^23 trick (vectorises, unlike nearbyint)
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float scale = bits_to_float((static_cast<int32_t>(n) + 127) << 23);
    return x < -87.0f ? 0.0f : p * scale;
}

// log(s) for finite s >= 1 (a logsumexp sum whose largest term is 1): Cephes logf.
inline float log_ge1(float s) {
    int32_t bits = float_to_bits(s);
    float e = static_cast<float>(((bits >> 23) & 0xff) - 127);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
    bool big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1.0f : e;
    float x = m - 1.0f;
    float z = x * x;
    float y = 7.0376836292e-2f;
    y = y * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z;
    y += e * -2.12194440e-4f;
    y += -0.5f * z;
    x = x + y;
    return x + e * 0.693359375f;
}

inline double exp_nonpos(double x) { return std::exp(x); }
inline double log_ge1(double s) { return std::log(s); }

template <typename T>
inline T neg_inf() { return -std::numeric_limits<T>::infinity(); }

// Online logsumexp accumulator over a tile: m = running max, s = sum exp(v - m).
template <typename T>
inline void lse_add(T* __restrict m, T* __restrict s, const T* __restrict v, int64_t n) {
    const T ninf = neg_inf<T>();
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        T c = v[j], mj = m[j];
        // -|c - m| is -inf when either is -inf (and c = -inf adds nothing): no inf - inf
        T d = (c == ninf) ? ninf : -std::fabs(c - mj);
        T e = exp_nonpos(d);
        bool up = c > mj;
        s[j] = up ? s[j] * e + T(1) : s[j] + e;
        m[j] = up ? c : mj;
    }
}

// The first term needs no exp: m = v, s = 1 (also right for v = -inf: later terms reset s).
template <typename T>
inline void lse_init(T* __restrict m, T* __restrict s, const T* __restrict v, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) { m[j] = v[j]; s[j] = T(1); }
}

template <typename T>
inline void lse_finish(T* __restrict out, const T* __restrict m, const T* __restrict s, int64_t n) {
    const T ninf = neg_inf<T>();
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        T mj = m[j];
        out[j] = (mj == ninf) ? ninf : mj + log_ge1(s[j]);
    }
}

struct Plan {
    int64_t num_layers;
    const int64_t* layer_start;
    const int64_t* layer_mid;
    const int64_t* layer_end;
    const int64_t* node_ptr;
    const int64_t* child_rows;
    const uint8_t* is_or;
    int64_t base;
    int64_t num_blocks;
    const int64_t* blocks;  // [num_blocks, 2] row ranges, top-down
    const int64_t* rev_ptr;
    const int64_t* rev_edge;
    const int64_t* rev_parent;
    const int64_t* edge_node;
};

// Layout: V and R are [tiles, rows, W]: one tile holds W batch columns of every row, so a whole
// forward (or backward) pass over the circuit runs on one tile with a working set of
// rows * W values that stays in cache, and tiles are independent: threads split the tiles and
// never meet at a per-layer barrier (which costs more than the work itself on a loaded machine).

// FIXED_W = 1 compiles a scalar copy for batch 1 (no tile loops or arrays: 3x faster there);
// FIXED_W = 0 takes the width at run time.
template <typename T, int FIXED_W>
void forward_tile(const Plan& p, T* V, int64_t width) {
    const int64_t W = FIXED_W ? FIXED_W : width;
    const int64_t E = p.node_ptr[p.layer_end[p.num_layers - 1]];
    for (int64_t l = 0; l < p.num_layers; ++l) {
        const int64_t nm = p.layer_mid[l];
        for (int64_t k = p.layer_start[l]; k < p.layer_end[l]; ++k) {
            T* out = V + (p.base + k) * W;
            const int64_t e0 = p.node_ptr[k], e1 = p.node_ptr[k + 1];
            // children are scattered: fetch the next node's first children meanwhile
            for (int64_t e = e1; e < e1 + 2 && e < E; ++e)
                for (int64_t j = 0; j < W; j += 64 / sizeof(T)) __builtin_prefetch(V + p.child_rows[e] * W + j);
            if (k < nm) {  // AND: sum of children (-inf absorbs, never +inf)
                T acc[TILE];
                const T* c0 = V + p.child_rows[e0] * W;
                for (int64_t j = 0; j < W; ++j) acc[j] = c0[j];
                for (int64_t e = e0 + 1; e < e1; ++e) {
                    const T* c = V + p.child_rows[e] * W;
#pragma omp simd
                    for (int64_t j = 0; j < W; ++j) acc[j] += c[j];
                }
                for (int64_t j = 0; j < W; ++j) out[j] = acc[j];
            } else {  // OR: logsumexp of children
                T m[TILE], s[TILE];
                lse_init(m, s, V + p.child_rows[e0] * W, W);
                if (e1 - e0 == 1) {  // a single child (the virtual root nodes): copy, exactly
                    for (int64_t j = 0; j < W; ++j) out[j] = m[j];
                    continue;
                }
                for (int64_t e = e0 + 1; e < e1; ++e) lse_add(m, s, V + p.child_rows[e] * W, W);
                lse_finish(out, m, s, W);
            }
        }
    }
}

// FAST (a tile whose values are all finite, e.g. probabilities strictly inside (0, 1)): AND
// rows store Q = R + V instead of R, so a child pulls Q_P - V_c from an AND parent with one
// scattered read instead of two. The exact general path handles tiles with zeros.
template <typename T, int FIXED_W, bool FAST>
void backward_tile(const Plan& p, const T* V, T* R, int64_t width) {
    const int64_t W = FIXED_W ? FIXED_W : width;
    const T ninf = neg_inf<T>();
    for (int64_t b = 0; b < p.num_blocks; ++b) {
        const int64_t r0 = p.blocks[2 * b], r1 = p.blocks[2 * b + 1];
        for (int64_t r = r0; r < r1; ++r) {
            T* out = R + r * W;
            const T* vc = V + r * W;
            int any_zero = 0;  // does this row have a -inf value in the tile?
            if (!FAST) {
#pragma omp simd reduction(| : any_zero)
                for (int64_t j = 0; j < W; ++j) any_zero |= (vc[j] == ninf);
            }
            T m[TILE], s[TILE], c[TILE];
            const int64_t q0 = p.rev_ptr[r], q1 = p.rev_ptr[r + 1];
            if (q0 == q1) {
                for (int64_t j = 0; j < W; ++j) out[j] = ninf;
                continue;
            }
            for (int64_t q = q0; q < q1; ++q) {
                const int64_t prow = p.rev_parent[q];
                const int64_t k = prow - p.base;
                const T* rp = R + prow * W;
                if (q + 2 < q1) {
                    // parents are scattered: fetch the rows two parents ahead (latency-bound loop)
                    const int64_t ahead = p.rev_parent[q + 2] * W;
                    for (int64_t j = 0; j < W; j += 64 / sizeof(T)) {
                        __builtin_prefetch(R + ahead + j);
                        if (!FAST) __builtin_prefetch(V + ahead + j);
                    }
                }
                if (p.is_or[k]) {
                    if (q == q0) lse_init(m, s, rp, W); else lse_add(m, s, rp, W);
                    continue;
                }
                // AND parent: adjoint times the product of the siblings
                if (FAST) {
#pragma omp simd
                    for (int64_t j = 0; j < W; ++j) c[j] = rp[j] - vc[j];
                    if (q == q0) lse_init(m, s, c, W); else lse_add(m, s, c, W);
                    continue;
                }
                const T* vp = V + prow * W;
#pragma omp simd
                for (int64_t j = 0; j < W; ++j) c[j] = rp[j] + (vp[j] - vc[j]);
                if (any_zero) {
                    // where this child is 0 the ratio W_P / W_c is 0/0: sum the siblings instead
                    T sib[TILE];
                    for (int64_t j = 0; j < W; ++j) sib[j] = T(0);
                    const int64_t self = p.rev_edge[q];
                    for (int64_t e = p.node_ptr[k]; e < p.node_ptr[k + 1]; ++e) {
                        if (e == self) continue;
                        const T* v = V + p.child_rows[e] * W;
                        for (int64_t j = 0; j < W; ++j) sib[j] += v[j];
                    }
                    for (int64_t j = 0; j < W; ++j)
                        if (vc[j] == ninf) c[j] = rp[j] + sib[j];
                }
                if (q == q0) lse_init(m, s, c, W); else lse_add(m, s, c, W);
            }
            if (q1 - q0 == 1) {  // one parent (most AND nodes): its contribution, exactly
                for (int64_t j = 0; j < W; ++j) out[j] = m[j];
            } else {
                lse_finish(out, m, s, W);
            }
            if (FAST && r >= p.base && !p.is_or[r - p.base]) {
#pragma omp simd
                for (int64_t j = 0; j < W; ++j) out[j] += vc[j];
            }
        }
    }
}

template <typename T>
inline void run_forward_tile(const Plan& p, T* V, int64_t W) {
    if (W == 1) forward_tile<T, 1>(p, V, 1); else forward_tile<T, 0>(p, V, W);
}

template <typename T>
inline void run_backward_tile(const Plan& p, const T* V, T* R, int64_t W, bool fast = false) {
    if (fast) {
        if (W == 1) backward_tile<T, 1, true>(p, V, R, 1); else backward_tile<T, 0, true>(p, V, R, W);
    } else {
        if (W == 1) backward_tile<T, 1, false>(p, V, R, 1); else backward_tile<T, 0, false>(p, V, R, W);
    }
}

// True when every value of a tile is finite: no leaf is -inf and no node has the FALSE row as a
// child (sums and logsumexps of finite values stay finite).
template <typename T>
inline bool tile_is_finite(const Plan& p, const T* Vt, int64_t W, bool uses_false) {
    if (uses_false) return false;
    const T ninf = neg_inf<T>();
    int zero = 0;
    for (int64_t j = 2 * W; j < p.base * W; ++j) zero |= (Vt[j] == ninf);
    return !zero;
}

inline bool plan_uses_false(const Plan& p) {
    const int64_t E = p.node_ptr[p.layer_end[p.num_layers - 1]];
    for (int64_t e = 0; e < E; ++e)
        if (p.child_rows[e] == 0) return true;
    return false;
}

// Threads pay off only past a few milliseconds of work: on a loaded machine waking a second
// thread can cost a scheduler time slice (milliseconds), more than a small circuit's whole pass.
inline bool use_threads(const Plan& p, int64_t tiles, int64_t W, int nthreads) {
    const int64_t edges = p.node_ptr[p.layer_end[p.num_layers - 1]];
    return nthreads > 1 && tiles > 1 && edges * tiles * W > 4000000;
}

template <typename T>
void forward(const Plan& p, T* V, int64_t tiles, int64_t rows, int64_t W, int nthreads) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (use_threads(p, tiles, W, nthreads))
    for (int64_t t = 0; t < tiles; ++t) run_forward_tile(p, V + t * rows * W, W);
}

template <typename T>
void backward(const Plan& p, const T* V, T* R, int64_t tiles, int64_t rows, int64_t W, int nthreads) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (use_threads(p, tiles, W, nthreads))
    for (int64_t t = 0; t < tiles; ++t) run_backward_tile(p, V + t * rows * W, R + t * rows * W, W);
}

// ---- whole passes from the caller's [batch, atoms] inputs to [batch, roots] / [batch, atoms]
// outputs, one tile per thread: leaves are filled, the circuit evaluated and the results read
// back while the tile is still in cache, and the Python side makes one call per direction.

enum Mode { PROBS = 0, LOGS = 1 };

template <typename T>
void fill_tile(const Plan& p, T* V, int64_t W, int64_t col0, int64_t B, int64_t A, int mode,
               const T* a, const T* b) {
    const T ninf = neg_inf<T>();
    for (int64_t j = 0; j < W; ++j) { V[j] = ninf; V[W + j] = T(0); }
    for (int64_t i = 0; i < A; ++i) {
        T* pos = V + (2 + i) * W;
        T* neg = V + (2 + A + i) * W;
        for (int64_t j = 0; j < W; ++j) {
            const int64_t col = col0 + j;
            if (col >= B) { pos[j] = T(0); neg[j] = T(0); continue; }  // padding: finite dummies
            if (mode == PROBS) {
                const T x = a[col * A + i];
                pos[j] = std::log(x);      // log 0 = -inf exactly
                neg[j] = std::log1p(-x);   // log1p(-1) = -inf exactly
            } else {
                pos[j] = a[col * A + i];
                neg[j] = b[col * A + i];
            }
        }
    }
}

template <typename T>
void eval_all(const Plan& p, int64_t A, int64_t nroots, int mode, const T* a, const T* b, int64_t B,
              T* V, int64_t tiles, int64_t rows, int64_t W, T* out, int nthreads) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (use_threads(p, tiles, W, nthreads))
    for (int64_t t = 0; t < tiles; ++t) {
        T* Vt = V + t * rows * W;
        fill_tile(p, Vt, W, t * W, B, A, mode, a, b);
        run_forward_tile(p, Vt, W);
        for (int64_t k = 0; k < nroots; ++k) {
            const T* root = Vt + (rows - nroots + k) * W;
            for (int64_t j = 0; j < W && t * W + j < B; ++j) out[(t * W + j) * nroots + k] = root[j];
        }
    }
}

// Gradients of sum_k gout[:, k] * log W_k. The top-down pass runs in log space, so the seed is
// split by sign (one pass per sign present in the tile). PROBS: d/dp = (A - B) / W per atom.
// LOGS: the partials of the smoothed polynomial (see evaluate._leaf_grads), into ga and gb.
template <typename T>
void grad_all(const Plan& p, int64_t A, int64_t nroots, int mode, int64_t B, const T* V, T* R,
              int64_t tiles, int64_t rows, int64_t W, const T* gout, T* ga, T* gb, int nthreads) {
    const T ninf = neg_inf<T>();
    const bool uses_false = plan_uses_false(p);
    // R == nullptr: each thread reuses one tile of adjoints instead of a [tiles, rows, W]
    // buffer, which halves the peak memory of training (the forward values must stay anyway)
#pragma omp parallel num_threads(nthreads) if (use_threads(p, tiles, W, nthreads))
    {
    std::vector<T> own(R == nullptr ? rows * W : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
        const T* Vt = V + t * rows * W;
        T* Rt = R == nullptr ? own.data() : R + t * rows * W;
        T total[TILE];
        for (int sign = 1; sign >= -1; sign -= 2) {
            bool any = false;
            for (int64_t j = 0; j < W; ++j) total[j] = T(0);
            for (int64_t k = 0; k < nroots; ++k) {
                const int64_t row = rows - nroots + k;
                for (int64_t j = 0; j < W; ++j) {
                    const int64_t col = t * W + j;
                    const T g = col < B ? sign * gout[col * nroots + k] : T(0);
                    const T v = Vt[row * W + j];
                    const bool live = g > T(0) && v != ninf;  // a false root has zero gradient
                    Rt[row * W + j] = live ? std::log(g) - v : ninf;
                    total[j] += live ? g : T(0);
                    any |= live;
                }
            }
            if (!any) continue;
            for (int64_t j = 0; j < 2 * W; ++j) Rt[j] = ninf;
            run_backward_tile(p, Vt, Rt, W, tile_is_finite(p, Vt, W, uses_false));
            for (int64_t j = 0; j < W; ++j) {
                const int64_t col = t * W + j;
                if (col >= B) break;
                for (int64_t i = 0; i < A; ++i) {
                    const T rpos = Rt[(2 + i) * W + j], rneg = Rt[(2 + A + i) * W + j];
                    if (mode == PROBS) {
                        ga[col * A + i] += sign * (std::exp(rpos) - std::exp(rneg));
                    } else {
                        const T lp = Vt[(2 + i) * W + j], lq = Vt[(2 + A + i) * W + j];
                        const T mpos = std::exp(lp + rpos), mneg = std::exp(lq + rneg);
                        const T rest = total[j] - mpos - mneg;
                        ga[col * A + i] += sign * (mpos + std::exp(lp) * rest);
                        gb[col * A + i] += sign * (mneg + std::exp(lq) * rest);
                    }
                }
            }
        }
    }
}
}


// ---- forward and backward of one root in a single call (the small-batch hot path) ----------
//
// A context binds a plan once (so a call passes a handle, not fourteen arrays) and owns one
// scratch tile of values and adjoints per thread, reused across calls: nothing is allocated per
// call, and no [rows, batch] buffer is kept at all (each tile's values are dead once its
// gradients are written). A second caller that finds the scratch busy (another Python thread:
// ctypes releases the GIL) allocates its own.

struct Ctx {
    Plan p;
    int64_t A, nroots, rows;
    bool uses_false;
    std::atomic_flag busy = ATOMIC_FLAG_INIT;
    std::vector<std::vector<double>> scratch;  // per thread; doubles for alignment
};

// One tile: fill the leaves, evaluate, write sign * log W_root; then (ga != nullptr) seed the
// root with 1, pull the adjoints and write sign * d log W_root / d inputs (written, not added).
template <typename T>
void fused_tile(const Ctx& c, T* buf, int64_t t, int64_t W, int64_t root, int mode, T sign,
                const T* a, const T* b, int64_t B, T* value, T* ga, T* gb) {
    const Plan& p = c.p;
    const int64_t rows = c.rows, A = c.A;
    const T ninf = neg_inf<T>();
    T* Vt = buf;
    T* Rt = buf + rows * W;
    const int64_t col0 = t * W;
    const int64_t ncols = std::min(W, B - col0);
    fill_tile(p, Vt, W, col0, B, A, mode, a, b);
    run_forward_tile(p, Vt, W);
    const int64_t rrow = rows - c.nroots + root;
    const T* rv = Vt + rrow * W;
    for (int64_t j = 0; j < ncols; ++j) value[col0 + j] = sign * rv[j];
    if (ga == nullptr) return;
    bool any = false;
    for (int64_t k = 0; k < c.nroots; ++k) {
        T* seed = Rt + (rows - c.nroots + k) * W;
        for (int64_t j = 0; j < W; ++j) {
            // a false root (W = 0) has zero gradient: no +inf seed
            const bool live = k == root && j < ncols && rv[j] != ninf;
            seed[j] = live ? -rv[j] : ninf;  // log(1 / W_root)
            any |= live;
        }
    }
    if (!any) {
        for (int64_t j = 0; j < ncols; ++j)
            for (int64_t i = 0; i < A; ++i) {
                ga[(col0 + j) * A + i] = T(0);
                if (gb != nullptr) gb[(col0 + j) * A + i] = T(0);
            }
        return;
    }
    for (int64_t j = 0; j < 2 * W; ++j) Rt[j] = ninf;
    run_backward_tile(p, Vt, Rt, W, tile_is_finite(p, Vt, W, c.uses_false));
    for (int64_t j = 0; j < ncols; ++j) {
        const int64_t col = col0 + j;
        const T total = rv[j] != ninf ? T(1) : T(0);
        for (int64_t i = 0; i < A; ++i) {
            const T rpos = Rt[(2 + i) * W + j], rneg = Rt[(2 + A + i) * W + j];
            if (mode == PROBS) {
                // dlogW/dp = (A - B) / W, finite at p in {0, 1}
                ga[col * A + i] = sign * (std::exp(rpos) - std::exp(rneg));
            } else {
                // the partials of the smoothed polynomial (see evaluate._leaf_grads)
                const T lp = Vt[(2 + i) * W + j], lq = Vt[(2 + A + i) * W + j];
                const T mpos = std::exp(lp + rpos), mneg = std::exp(lq + rneg);
                const T rest = total - mpos - mneg;
                ga[col * A + i] = sign * (mpos + std::exp(lp) * rest);
                gb[col * A + i] = sign * (mneg + std::exp(lq) * rest);
            }
        }
    }
}

// The flat index of the first input outside its domain (a probability outside [0, 1], or a log
// probability that is NaN or above 0; index n + i for b[i]), else -1. NaN fails every comparison,
// so one test per value catches it. The whole input is OR-reduced first (no early exit, so the
// loop vectorises); only a batch with a bad value is scanned again for its position.
template <typename T>
int64_t first_invalid(const T* a, const T* b, int64_t n, int mode) {
    bool bad = false;
    if (mode == PROBS) {
        for (int64_t i = 0; i < n; ++i) bad |= !(a[i] >= T(0) && a[i] <= T(1));
        if (!bad) return -1;
        for (int64_t i = 0; i < n; ++i)
            if (!(a[i] >= T(0) && a[i] <= T(1))) return i;
        return -1;
    }
    for (int64_t i = 0; i < n; ++i) bad |= !(a[i] <= T(0)) || !(b[i] <= T(0));
    if (!bad) return -1;
    for (int64_t i = 0; i < n; ++i)
        if (!(a[i] <= T(0))) return i;
    for (int64_t i = 0; i < n; ++i)
        if (!(b[i] <= T(0))) return n + i;
    return -1;
}

template <typename T>
int64_t fused_all(Ctx& c, int64_t root, int mode, T sign, const T* a, const T* b, int64_t B, T* value,
                  T* ga, T* gb, int nthreads) {
    if (B <= 0) return -1;
    const int64_t bad = first_invalid(a, b, B * c.A, mode);
    if (bad >= 0) return bad;
    const int64_t W = B <= TILE ? B : TILE;  // evaluate.cpu_tile_width
    const int64_t tiles = (B + W - 1) / W;
    const int64_t need = (ga == nullptr ? 1 : 2) * c.rows * W;
    const size_t words = (static_cast<size_t>(need) * sizeof(T) + sizeof(double) - 1) / sizeof(double);
    const int nt = use_threads(c.p, tiles, W, nthreads) ? static_cast<int>(std::min<int64_t>(nthreads, tiles)) : 1;
    const bool own = !c.busy.test_and_set(std::memory_order_acquire);
    if (own && c.scratch.size() < static_cast<size_t>(nt)) c.scratch.resize(nt);
    if (nt == 1) {  // no OpenMP region at all: batch 1 costs microseconds
        std::vector<double> local;
        std::vector<double>* s = &local;
        if (own) s = &c.scratch[0];
        if (s->size() < words) s->resize(words);
        T* buf = reinterpret_cast<T*>(s->data());
        for (int64_t t = 0; t < tiles; ++t) fused_tile(c, buf, t, W, root, mode, sign, a, b, B, value, ga, gb);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            std::vector<double> local;
            std::vector<double>* s = own ? &c.scratch[tid] : &local;
            if (s->size() < words) s->resize(words);
            T* buf = reinterpret_cast<T*>(s->data());
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < tiles; ++t) fused_tile(c, buf, t, W, root, mode, sign, a, b, B, value, ga, gb);
        }
    }
    if (own) c.busy.clear(std::memory_order_release);
    return -1;
}

}  // namespace

extern "C" {

// The version of the exported signatures below; bump it (and cpu_kernel.ABI) when one changes.
int constraintc_kernel_abi() { return 5; }

#define PLAN_ARGS                                                                              \
    int64_t num_layers, const int64_t *layer_start, const int64_t *layer_mid,                   \
        const int64_t *layer_end, const int64_t *node_ptr, const int64_t *child_rows,           \
        const uint8_t *is_or, int64_t base, int64_t num_blocks, const int64_t *blocks,          \
        const int64_t *rev_ptr, const int64_t *rev_edge, const int64_t *rev_parent,             \
        const int64_t *edge_node
#define PLAN_INIT                                                                              \
    Plan p{num_layers, layer_start, layer_mid, layer_end, node_ptr, child_rows, is_or, base,    \
           num_blocks, blocks, rev_ptr, rev_edge, rev_parent, edge_node}

void circuit_forward_f32(PLAN_ARGS, float* V, int64_t tiles, int64_t rows, int64_t W, int nthreads) {
    PLAN_INIT;
    forward<float>(p, V, tiles, rows, W, nthreads);
}
void circuit_forward_f64(PLAN_ARGS, double* V, int64_t tiles, int64_t rows, int64_t W, int nthreads) {
    PLAN_INIT;
    forward<double>(p, V, tiles, rows, W, nthreads);
}
void circuit_backward_f32(PLAN_ARGS, const float* V, float* R, int64_t tiles, int64_t rows, int64_t W,
                          int nthreads) {
    PLAN_INIT;
    backward<float>(p, V, R, tiles, rows, W, nthreads);
}
void circuit_backward_f64(PLAN_ARGS, const double* V, double* R, int64_t tiles, int64_t rows, int64_t W,
                          int nthreads) {
    PLAN_INIT;
    backward<double>(p, V, R, tiles, rows, W, nthreads);
}

void circuit_eval_f32(PLAN_ARGS, int64_t A, int64_t nroots, int mode, const float* a, const float* b,
                      int64_t B, float* V, int64_t tiles, int64_t rows, int64_t W, float* out,
                      int nthreads) {
    PLAN_INIT;
    eval_all<float>(p, A, nroots, mode, a, b, B, V, tiles, rows, W, out, nthreads);
}
void circuit_eval_f64(PLAN_ARGS, int64_t A, int64_t nroots, int mode, const double* a, const double* b,
                      int64_t B, double* V, int64_t tiles, int64_t rows, int64_t W, double* out,
                      int nthreads) {
    PLAN_INIT;
    eval_all<double>(p, A, nroots, mode, a, b, B, V, tiles, rows, W, out, nthreads);
}
void circuit_grad_f32(PLAN_ARGS, int64_t A, int64_t nroots, int mode, int64_t B, const float* V,
                      float* R, int64_t tiles, int64_t rows, int64_t W, const float* gout, float* ga,
                      float* gb, int nthreads) {
    PLAN_INIT;
    grad_all<float>(p, A, nroots, mode, B, V, R, tiles, rows, W, gout, ga, gb, nthreads);
}
void circuit_grad_f64(PLAN_ARGS, int64_t A, int64_t nroots, int mode, int64_t B, const double* V,
                      double* R, int64_t tiles, int64_t rows, int64_t W, const double* gout,
                      double* ga, double* gb, int nthreads) {
    PLAN_INIT;
    grad_all<double>(p, A, nroots, mode, B, V, R, tiles, rows, W, gout, ga, gb, nthreads);
}
// A handle for circuit_fused_*: the plan's arrays are read by address and must outlive it.
void* circuit_ctx_new(PLAN_ARGS, int64_t A, int64_t nroots, int64_t rows) {
    PLAN_INIT;
    Ctx* c = new Ctx();
    c->p = p;
    c->A = A;
    c->nroots = nroots;
    c->rows = rows;
    c->uses_false = plan_uses_false(p);
    return c;
}
void circuit_ctx_free(void* ctx) { delete static_cast<Ctx*>(ctx); }

// value[B] = sign * log W_root; with ga: ga (and gb in log mode) [B, A] = sign * its gradient
// w.r.t. a (and b). sign = -1 gives the semantic loss and its gradient. Returns -1, or, leaving
// the outputs unwritten, the flat index of the first input outside its domain (see first_invalid).
int64_t circuit_fused_f32(void* ctx, int64_t root, int mode, int sign, const float* a, const float* b,
                          int64_t B, float* value, float* ga, float* gb, int nthreads) {
    return fused_all<float>(*static_cast<Ctx*>(ctx), root, mode, static_cast<float>(sign), a, b, B, value,
                            ga, gb, nthreads);
}
int64_t circuit_fused_f64(void* ctx, int64_t root, int mode, int sign, const double* a, const double* b,
                          int64_t B, double* value, double* ga, double* gb, int nthreads) {
    return fused_all<double>(*static_cast<Ctx*>(ctx), root, mode, static_cast<double>(sign), a, b, B, value,
                             ga, gb, nthreads);
}
}
