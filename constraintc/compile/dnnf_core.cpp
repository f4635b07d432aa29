// Top-down decision-DNNF compiler: the C++ core of constraintc's built-in back end.
//
// Exhaustive DPLL search that records its trace as a circuit (Huang & Darwiche, "DPLL with a
// trace"): at each step the residual formula is split into connected components (AND nodes,
// decomposable), each component is looked up in a cache keyed by its unassigned variables and the
// clauses that are shortened but not yet satisfied (the key determines the residual formula), and
// otherwise a variable is decided (OR of two branches, deterministic). Unit propagation adds the
// implied literals to each branch's AND. Nodes are hash-consed. Plain C ABI, loaded with ctypes.
//
// Build: g++ -O2 -std=c++17 -shared -fPIC dnnf_core.cpp -o libdnnf_core.so

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <pthread.h>
#include <queue>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

enum Kind : int8_t { K_FALSE = 0, K_TRUE = 1, K_LIT = 2, K_AND = 3, K_OR = 4 };
enum Status : int {
  ST_OK = 0, ST_TIME = 2, ST_EDGES = 3, ST_ABORT = 4, ST_DECISIONS = 5, ST_MEMORY = 6,
  ST_INTERRUPTED = 7
};
constexpr int ABORTED = -1;

typedef int (*progress_fn)(double done, int64_t nodes, int64_t edges, int64_t decisions);

struct VecHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull ^ v.size();
    for (int32_t x : v) {
      h ^= (uint32_t)x;
      h *= 1099511628211ull;
      h ^= h >> 29;
    }
    return (size_t)h;
  }
};

inline uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A component is cached under a 128-bit digest of its key (not the key itself, which can hold
// tens of thousands of ids on large formulas): memory stays bounded; two different components
// collide with probability about n^2 / 2^128 for n cached components.
struct Digest {
  uint64_t a, b;
  bool operator==(const Digest& o) const { return a == o.a && b == o.b; }
};
struct DigestHash {
  size_t operator()(const Digest& d) const { return (size_t)(d.a ^ (d.b * 0x9e3779b97f4a7c15ull)); }
};

// Sums of two independent 64-bit hashes of the elements: an order-independent digest of a set.
inline void add_element(Digest& d, uint64_t x) {
  d.a += mix64(x ^ 0x243f6a8885a308d3ull);
  d.b += mix64(x * 0x452821e638d01377ull + 0x13198a2e03707344ull);
}

struct Compiler {
  // ---- circuit (shared by every CNF compiled with this handle) ----
  std::vector<int8_t> kind{K_FALSE, K_TRUE};
  std::vector<int32_t> lit{0, 0};
  std::vector<int64_t> ptr{0, 0, 0};
  std::vector<int32_t> kids;
  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> node_index;
  std::vector<int32_t> lit_node;  // 2 * num_vars + 1 entries, index lit + num_vars

  // ---- current CNF ----
  int nv = 0;
  std::vector<std::vector<int32_t>> clauses;
  std::vector<std::vector<int32_t>> occ;  // index lit + nv
  std::vector<int8_t> val;                // per var: 0 unassigned, 1 true, -1 false
  std::vector<int32_t> trail;
  size_t qhead = 0;
  std::vector<int32_t> nsat, nfalse;
  std::vector<char> is_taut;
  bool has_empty = false;
  std::vector<uint32_t> var_stamp, clause_stamp;
  uint32_t stamp = 0;
  std::unordered_map<Digest, int32_t, DigestHash> cache;
  std::vector<double> score;
  int heuristic = 0;
  int num_atoms = 0;
  // Auxiliary (Tseitin) literals are left out of the circuit: an auxiliary is a function of the
  // atoms, so in every residual formula it is a function of the component's atoms, and replacing
  // its literals by TRUE (forgetting it, valid in a DNNF) keeps every OR deterministic on the
  // atoms. The circuit is then a d-DNNF of the constraint projected onto its atoms.
  inline bool is_atom(int32_t l) const { return (l > 0 ? l : -l) <= num_atoms; }
  std::vector<int32_t> prio;

  // ---- budgets, progress ----
  std::chrono::steady_clock::time_point start;
  double max_seconds = -1;
  int64_t max_edges = -1;
  int64_t max_decisions = -1;
  int64_t max_memory = -1;   // bytes, compared with memory_estimate()
  int64_t base_bytes = 0;    // what the loaded CNF holds
  // Set from another thread (dnnf_interrupt) when the user interrupts: read at every step of
  // the search, so a compile stops within microseconds of the request.
  std::atomic<int> interrupt{0};
  progress_fn progress = nullptr;
  double progress_every = 0.5, last_progress = 0;
  double done = 0;
  int64_t decisions = 0, cache_hits = 0, calls = 0;
  int status = ST_OK;

  // ---- export ----
  std::vector<int8_t> out_kind;
  std::vector<int32_t> out_lit, out_kids, out_roots;
  std::vector<int64_t> out_ptr;

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  int32_t make(int8_t k, int32_t l, std::vector<int32_t>& ch) {
    // key: kind, then children (or the literal)
    std::vector<int32_t> key;
    key.reserve(ch.size() + 1);
    key.push_back(k);
    if (k == K_LIT) key.push_back(l);
    else key.insert(key.end(), ch.begin(), ch.end());
    auto it = node_index.find(key);
    if (it != node_index.end()) return it->second;
    int32_t id = (int32_t)kind.size();
    kind.push_back(k);
    lit.push_back(l);
    kids.insert(kids.end(), ch.begin(), ch.end());
    ptr.push_back((int64_t)kids.size());
    node_index.emplace(std::move(key), id);
    return id;
  }

  int32_t lit_of(int32_t l) {
    int32_t& slot = lit_node[l + nv];
    if (slot < 0) {
      std::vector<int32_t> none;
      slot = make(K_LIT, l, none);
    }
    return slot;
  }

  int32_t conj(std::vector<int32_t>& ch) {
    std::vector<int32_t> k;
    for (int32_t c : ch) {
      if (c == 0) return 0;
      if (c != 1) k.push_back(c);
    }
    if (k.empty()) return 1;
    std::sort(k.begin(), k.end());
    k.erase(std::unique(k.begin(), k.end()), k.end());
    if (k.size() == 1) return k[0];
    return make(K_AND, 0, k);
  }

  int32_t disj(int32_t a, int32_t b) {
    if (a == 1 || b == 1) return 1;
    if (a == 0) return b;
    if (b == 0 || a == b) return a;
    std::vector<int32_t> k{std::min(a, b), std::max(a, b)};
    return make(K_OR, 0, k);
  }

  // ---- assignment and unit propagation ----
  inline int8_t value(int32_t l) const {
    int8_t v = val[l > 0 ? l : -l];
    return l > 0 ? v : (int8_t)-v;
  }

  inline void enqueue(int32_t l) {
    val[l > 0 ? l : -l] = l > 0 ? 1 : -1;
    trail.push_back(l);
  }

  // Processes the queue; returns false on a conflict. Counters are updated for every processed
  // literal, so undo() can reverse exactly what was done.
  bool propagate() {
    bool ok = true;
    while (qhead < trail.size()) {
      int32_t l = trail[qhead++];
      for (int32_t c : occ[l + nv]) nsat[c]++;
      for (int32_t c : occ[-l + nv]) {
        int32_t f = ++nfalse[c];
        if (!ok || nsat[c] > 0) continue;
        const auto& cl = clauses[c];
        int32_t sz = (int32_t)cl.size();
        if (f == sz) {
          ok = false;
        } else if (f == sz - 1) {
          for (int32_t x : cl) {
            int8_t v = value(x);
            if (v == 0) { enqueue(x); break; }
            if (v == 1) break;  // satisfied by a pending literal
          }
          // all remaining literals false but pending: the conflict shows when they are processed
        }
      }
      if (!ok) return false;
    }
    return ok;
  }

  void undo(size_t target) {
    while (trail.size() > target) {
      int32_t l = trail.back();
      trail.pop_back();
      if (trail.size() < qhead) {
        for (int32_t c : occ[l + nv]) nsat[c]--;
        for (int32_t c : occ[-l + nv]) nfalse[c]--;
      }
      val[l > 0 ? l : -l] = 0;
    }
    if (qhead > target) qhead = target;
  }

  // ---- components ----
  // Splits the unassigned variables among `vars` into connected components through clauses that
  // are not yet satisfied. Variables without such clauses are free and are dropped.
  void components(const std::vector<int32_t>& vars, std::vector<std::vector<int32_t>>& comp_vars,
                  std::vector<std::vector<int32_t>>& comp_clauses) {
    ++stamp;
    for (int32_t v : vars) {
      if (val[v] != 0 || var_stamp[v] == stamp) continue;
      std::vector<int32_t> cv{v}, cc;
      var_stamp[v] = stamp;
      for (size_t i = 0; i < cv.size(); ++i) {
        int32_t x = cv[i];
        for (int s = 0; s < 2; ++s) {
          int32_t l = s ? -x : x;
          for (int32_t c : occ[l + nv]) {
            if (nsat[c] > 0 || clause_stamp[c] == stamp) continue;
            clause_stamp[c] = stamp;
            cc.push_back(c);
            for (int32_t y : clauses[c]) {
              int32_t w = y > 0 ? y : -y;
              if (val[w] == 0 && var_stamp[w] != stamp) {
                var_stamp[w] = stamp;
                cv.push_back(w);
              }
            }
          }
        }
      }
      if (cc.empty()) continue;  // free variable
      comp_vars.push_back(std::move(cv));
      comp_clauses.push_back(std::move(cc));
    }
  }

  // Digest of (component variables, shortened open clauses). Variables and clause ids are tagged
  // apart; a clause of the component whose variables are all open is implied by the variables.
  Digest set_digest(const std::vector<int32_t>& vars, const std::vector<int32_t>& cls) const {
    Digest d{vars.size() * 0x9e3779b97f4a7c15ull, cls.size()};
    for (int32_t v : vars) add_element(d, (uint64_t)(uint32_t)v);
    for (int32_t c : cls)
      if (nfalse[c] > 0) add_element(d, (1ull << 40) | (uint64_t)(uint32_t)c);
    return d;
  }

  int32_t pick(const std::vector<int32_t>& vars, const std::vector<int32_t>& cls) {
    if (heuristic == 1) return *std::min_element(vars.begin(), vars.end());
    if (heuristic == 2 || heuristic == 3) {
      int32_t best = vars[0];
      for (int32_t v : vars) if (prio[v] < prio[best]) best = v;
      return best;
    }
    for (int32_t v : vars) score[v] = 0;
    for (int32_t c : cls) {
      int32_t active = (int32_t)clauses[c].size() - nfalse[c];
      double w = active <= 2 ? 4.0 : (active == 3 ? 1.0 : 0.5);
      for (int32_t y : clauses[c]) {
        int32_t v = y > 0 ? y : -y;
        if (val[v] == 0) score[v] += w;
      }
    }
    int32_t best = vars[0];
    for (int32_t v : vars)
      if (score[v] > score[best] || (score[v] == score[best] && prio[v] < prio[best])) best = v;
    return best;
  }

  // Bytes the compiler holds, estimated from its tables (per node: kind, literal, offset, and
  // the hash-consing key and entry; per edge: the child and its copy in the key; per cached
  // component: a digest, an id and the entry), plus the loaded CNF.
  int64_t memory_estimate() const {
    return base_bytes + (int64_t)kind.size() * 96 + (int64_t)kids.size() * 8 +
           (int64_t)cache.size() * 56;
  }

  bool check_budget() {
    if (interrupt.load(std::memory_order_relaxed)) { status = ST_INTERRUPTED; return false; }
    if ((++calls & 1023) != 0) return true;
    double t = elapsed();
    if (max_seconds > 0 && t > max_seconds) { status = ST_TIME; return false; }
    if (max_edges >= 0 && (int64_t)kids.size() > max_edges) { status = ST_EDGES; return false; }
    if (max_decisions >= 0 && decisions > max_decisions) { status = ST_DECISIONS; return false; }
    if (max_memory >= 0 && memory_estimate() > max_memory) { status = ST_MEMORY; return false; }
    if (progress && t - last_progress >= progress_every) {
      last_progress = t;
      if (progress(done, (int64_t)kind.size(), (int64_t)kids.size(), decisions) != 0) {
        status = ST_ABORT;
        return false;
      }
    }
    return true;
  }

  // Compiles the residual formula of the current assignment restricted to one component.
  int32_t compile_component(std::vector<int32_t>& vars, std::vector<int32_t>& cls, double weight) {
    if (!check_budget()) return ABORTED;
    // The key determines the residual formula: the component's variables, and those of its
    // clauses that lost literals (a clause of the component whose variables are all open is
    // implied by the variables; a shortened one is present only if not yet satisfied).
    // Hashed as a set (a sum of per-element hashes), so neither list needs sorting.
    Digest dkey = set_digest(vars, cls);
    auto it = cache.find(dkey);
    if (it != cache.end()) {
      ++cache_hits;
      done += weight;
      return it->second;
    }
    int32_t x = pick(vars, cls);
    ++decisions;
    int32_t branch[2];
    for (int s = 0; s < 2; ++s) {
      int32_t l = s == 0 ? x : -x;
      double w = weight / 2;
      size_t mark = trail.size();
      enqueue(l);
      if (!propagate()) {
        undo(mark);
        branch[s] = 0;
        done += w;
        continue;
      }
      std::vector<int32_t> ch;
      for (size_t i = mark; i < trail.size(); ++i)
        if (is_atom(trail[i])) ch.push_back(lit_of(trail[i]));
      std::vector<std::vector<int32_t>> cv, cc;
      components(vars, cv, cc);
      int32_t result = -2;
      if (cv.empty()) done += w;
      // small components first: an unsatisfiable one is found sooner
      std::vector<size_t> order(cv.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return cv[a].size() < cv[b].size(); });
      double wc = cv.empty() ? 0 : w / (double)cv.size();
      for (size_t k = 0; k < order.size(); ++k) {
        size_t i = order[k];
        int32_t sub = compile_component(cv[i], cc[i], wc);
        if (sub == ABORTED) { result = ABORTED; break; }
        if (sub == 0) {
          result = 0;
          done += wc * (double)(order.size() - k - 1);
          break;
        }
        ch.push_back(sub);
      }
      undo(mark);
      if (result == ABORTED) return ABORTED;
      branch[s] = result == 0 ? 0 : conj(ch);
    }
    int32_t node = disj(branch[0], branch[1]);
    cache.emplace(dkey, node);
    return node;
  }

  void load(int num_vars, int num_clauses, const int32_t* flat, const int64_t* cptr) {
    if (num_vars > nv) {
      // literal nodes are indexed by lit + nv: rebuild the table for the larger range
      std::vector<int32_t> table(2 * (size_t)num_vars + 1, -1);
      for (int32_t l = -nv; l <= nv; ++l)
        if (l != 0 && !lit_node.empty()) table[l + num_vars] = lit_node[l + nv];
      lit_node.swap(table);
      nv = num_vars;
    }
    clauses.assign(num_clauses, {});
    base_bytes = (int64_t)num_clauses * 64 + cptr[num_clauses] * 8 + (2 * (int64_t)num_vars + 1) * 28 +
                 (int64_t)num_vars * 24;
    is_taut.assign(num_clauses, 0);
    has_empty = false;
    occ.assign(2 * (size_t)nv + 1, {});
    for (int c = 0; c < num_clauses; ++c) {
      std::vector<int32_t> cl(flat + cptr[c], flat + cptr[c + 1]);
      std::sort(cl.begin(), cl.end());
      cl.erase(std::unique(cl.begin(), cl.end()), cl.end());
      bool taut = false;
      for (size_t i = 0; i + 1 < cl.size(); ++i)
        for (size_t j = i + 1; j < cl.size(); ++j)
          if (cl[i] == -cl[j]) taut = true;
      if (cl.empty()) has_empty = true;
      if (taut) cl.clear();  // a tautology constrains nothing; marked satisfied in compile_root
      is_taut[c] = taut;
      clauses[c] = cl;
      for (int32_t l : cl) occ[l + nv].push_back(c);
    }
    val.assign(nv + 1, 0);
    trail.clear();
    qhead = 0;
    nsat.assign(num_clauses, 0);
    nfalse.assign(num_clauses, 0);
    var_stamp.assign(nv + 1, 0);
    clause_stamp.assign(num_clauses, 0);
    stamp = 0;
    score.assign(nv + 1, 0);
    if ((int)prio.size() != nv + 1) { prio.resize(nv + 1); for (int v = 0; v <= nv; ++v) prio[v] = v; }
    cache.clear();
  }

  // A static decision order by maximum connectivity (a maximum-cardinality search on the clause
  // hypergraph): next comes the variable in the most clauses that already hold an ordered
  // variable, then the most such variables, then the most clauses. Deciding along it keeps the
  // boundary between decided and open variables small, so few distinct residual formulas arise
  // and the component cache hits (on the transitivity constraint it finds the node-by-node
  // elimination order, 3x smaller than the dynamic occurrence heuristic).
  void connectivity_order() {
    std::vector<int32_t> touched(clauses.size(), 0);
    std::vector<int64_t> k1(nv + 1, 0), k2(nv + 1, 0), deg(nv + 1, 0);
    std::vector<char> done_v(nv + 1, 0);
    for (auto& cl : clauses)
      for (int32_t y : cl) deg[y > 0 ? y : -y]++;
    typedef std::tuple<int64_t, int64_t, int64_t, int32_t> Entry;  // k1, k2, deg, -v
    std::priority_queue<Entry> heap;
    for (int32_t v = 1; v <= nv; ++v) heap.emplace(0, 0, deg[v], -v);
    prio.assign(nv + 1, 0);
    int32_t rank = 0;
    while (!heap.empty()) {
      auto [a, b, d, mv] = heap.top();
      heap.pop();
      int32_t v = -mv;
      if (done_v[v] || a != k1[v] || b != k2[v]) continue;  // stale entry
      done_v[v] = 1;
      prio[v] = rank++;
      for (int s = 0; s < 2; ++s) {
        for (int32_t c : occ[(s ? -v : v) + nv]) {
          bool first = touched[c]++ == 0;
          for (int32_t y : clauses[c]) {
            int32_t w = y > 0 ? y : -y;
            if (done_v[w]) continue;
            if (first) k1[w]++;
            k2[w]++;
            heap.emplace(k1[w], k2[w], deg[w], -w);
          }
        }
      }
    }
  }

  // Returns the root node (0 when unsatisfiable) or ABORTED.
  int32_t compile_root(bool& trivially_unsat) {
    trivially_unsat = has_empty;
    if (has_empty) return 0;
    for (size_t c = 0; c < clauses.size(); ++c) {
      if (clauses[c].size() == 1) {
        int32_t l = clauses[c][0];
        int8_t v = value(l);
        if (v == -1) { trivially_unsat = true; undo(0); return 0; }
        if (v == 0) enqueue(l);
      }
    }
    // tautologies were emptied: mark them satisfied so they are never treated as conflicts
    for (size_t c = 0; c < clauses.size(); ++c)
      if (is_taut[c]) nsat[c] = 1;
    if (!propagate()) { undo(0); return 0; }
    std::vector<int32_t> ch;
    for (int32_t l : trail)
      if (is_atom(l)) ch.push_back(lit_of(l));
    std::vector<int32_t> all;
    for (int32_t v = 1; v <= nv; ++v) all.push_back(v);
    std::vector<std::vector<int32_t>> cv, cc;
    components(all, cv, cc);
    double wc = cv.empty() ? 0 : 1.0 / (double)cv.size();
    if (cv.empty()) done = 1;
    int32_t result = -2;
    for (size_t i = 0; i < cv.size(); ++i) {
      int32_t sub = compile_component(cv[i], cc[i], wc);
      if (sub == ABORTED) { result = ABORTED; break; }
      if (sub == 0) { result = 0; break; }
      ch.push_back(sub);
    }
    undo(0);
    if (result == ABORTED) return ABORTED;
    if (result == 0) return 0;
    return conj(ch);
  }

  // Keeps the nodes reachable from roots, renumbered in topological order.
  void finalize(const int32_t* roots, int n) {
    size_t total = kind.size();
    std::vector<int32_t> remap(total, -1);
    std::vector<char> keep(total, 0);
    std::vector<int32_t> stack(roots, roots + n);
    while (!stack.empty()) {
      int32_t i = stack.back();
      stack.pop_back();
      if (keep[i]) continue;
      keep[i] = 1;
      for (int64_t e = ptr[i]; e < ptr[i + 1]; ++e) stack.push_back(kids[e]);
    }
    out_kind.clear(); out_lit.clear(); out_kids.clear(); out_ptr.assign(1, 0); out_roots.clear();
    for (size_t i = 0; i < total; ++i) {
      if (!keep[i]) continue;
      remap[i] = (int32_t)out_kind.size();
      out_kind.push_back(kind[i]);
      out_lit.push_back(lit[i]);
      for (int64_t e = ptr[i]; e < ptr[i + 1]; ++e) out_kids.push_back(remap[kids[e]]);
      out_ptr.push_back((int64_t)out_kids.size());
    }
    for (int i = 0; i < n; ++i) out_roots.push_back(remap[roots[i]]);
  }
};

}  // namespace

extern "C" {

// The version of the exported signatures below; bump it (and dnnf.ABI) when one changes.
int dnnf_abi() { return 2; }

void* dnnf_new() { return new Compiler(); }

void dnnf_free(void* h) { delete static_cast<Compiler*>(h); }

// Variable priority (lower first) for tie-breaking and for the static-order heuristic.
void dnnf_set_priority(void* h, int num_vars, const int32_t* prio) {
  Compiler& c = *static_cast<Compiler*>(h);
  c.prio.assign(prio, prio + num_vars + 1);
}

// Asks a running dnnf_compile on this handle to stop (safe from any thread): it returns status
// 7 within one step of its search.
void dnnf_interrupt(void* h) {
  static_cast<Compiler*>(h)->interrupt.store(1, std::memory_order_relaxed);
}

// Compiles one CNF into the shared node table. Returns a status (0 ok, 2 time budget, 3 edge
// budget, 4 aborted by the progress callback, 5 decision budget, 6 memory budget, 7
// interrupted); *root is the root node, 0 if unsatisfiable. Negative budgets mean none.
int dnnf_compile(void* h, int num_vars, int num_atoms, int num_clauses, const int32_t* lits,
                 const int64_t* cptr, int heuristic, double max_seconds, int64_t max_edges,
                 int64_t max_decisions, int64_t max_memory, progress_fn progress,
                 double progress_every, int32_t* root) {
  Compiler& c = *static_cast<Compiler*>(h);
  if (c.interrupt.load()) return ST_INTERRUPTED;
  c.load(num_vars, num_clauses, lits, cptr);
  c.num_atoms = num_atoms;
  c.heuristic = heuristic;
  if (c.heuristic == 3) c.connectivity_order();
  c.start = std::chrono::steady_clock::now();
  c.max_seconds = max_seconds;
  c.max_edges = max_edges;
  c.max_decisions = max_decisions;
  c.max_memory = max_memory;
  c.decisions = 0;  // statistics and the decision budget are per CNF
  c.cache_hits = 0;
  c.calls = 0;
  c.progress = progress;
  c.progress_every = progress_every;
  c.last_progress = -progress_every;  // the first budget check reports: short compiles too
  c.done = 0;
  c.status = ST_OK;
  // The search recurses once per decision along a branch: run it on a thread with a large stack
  // (reserved lazily by the OS) so that formulas with very many variables cannot overflow it.
  struct Job {
    Compiler* c;
    int32_t r;
  } job{&c, 0};
  auto body = [](void* arg) -> void* {
    Job* j = static_cast<Job*>(arg);
    bool trivially_unsat = false;
    j->r = j->c->compile_root(trivially_unsat);
    return nullptr;
  };
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, (size_t)1 << 30);
  pthread_t thread;
  if (pthread_create(&thread, &attr, body, &job) == 0) {
    pthread_join(thread, nullptr);
  } else {
    body(&job);  // no thread available: run here, on the caller's stack
  }
  pthread_attr_destroy(&attr);
  int32_t r = job.r;
  if (r == ABORTED) {
    c.undo(0);
    return c.status;
  }
  *root = r;
  return ST_OK;
}

// stats: done fraction, nodes, edges, decisions, cache hits, cache entries
void dnnf_stats(void* h, double* out) {
  Compiler& c = *static_cast<Compiler*>(h);
  out[0] = c.done;
  out[1] = (double)c.kind.size();
  out[2] = (double)c.kids.size();
  out[3] = (double)c.decisions;
  out[4] = (double)c.cache_hits;
  out[5] = (double)c.cache.size();
}

// Prepares the export of the nodes reachable from roots; sizes[0] = nodes, sizes[1] = edges.
void dnnf_finalize(void* h, const int32_t* roots, int n, int64_t* sizes) {
  Compiler& c = *static_cast<Compiler*>(h);
  c.finalize(roots, n);
  sizes[0] = (int64_t)c.out_kind.size();
  sizes[1] = (int64_t)c.out_kids.size();
}

void dnnf_export(void* h, int8_t* kinds, int32_t* lits, int64_t* ptr, int32_t* kids,
                 int32_t* roots) {
  Compiler& c = *static_cast<Compiler*>(h);
  std::memcpy(kinds, c.out_kind.data(), c.out_kind.size());
  std::memcpy(lits, c.out_lit.data(), c.out_lit.size() * sizeof(int32_t));
  std::memcpy(ptr, c.out_ptr.data(), c.out_ptr.size() * sizeof(int64_t));
  std::memcpy(kids, c.out_kids.data(), c.out_kids.size() * sizeof(int32_t));
  std::memcpy(roots, c.out_roots.data(), c.out_roots.size() * sizeof(int32_t));
}

}  // extern "C"
