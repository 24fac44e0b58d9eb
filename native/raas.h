#pragma once

// raas-local: KV-cache policies inside llama.cpp (compiled in as src/raas/).
//
// Up to n_seq_max sequences in a llama_kv_cache, each in its own KV stream
// (kv_unified = false when there are several), each with its own policy state
// (raas_seq): pins, pages, step counter, budget, stats. The cache decides per
// cell for all layers at once, so the policies decide per page of a sequence's cells:
//   - prompt positions are pinned by the caller and never freed;
//   - decode positions form pages of page_size consecutive positions;
//   - before a batch is placed, a sequence's pages are freed (seq_rm) until its
//     tokens of the batch fit its budget;
//   - after a step, the policy observes the attention scores of the sequence's
//     last token in the batch (each stream's row of the graph's scores).
// What differs between policies is one row of raas_policy, defined in the
// kind's raas-policy-<kind>.cpp and listed in raas-policies.cpp.

#include "llama.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct ggml_context;
struct ggml_tensor;
struct ggml_cgraph;
struct ggml_backend_sched;
class  llama_kv_cache;
class  llm_graph_result;
struct llama_ubatch;
struct llama_raas;
struct raas_seq;

struct raas_page {
    llama_pos first;
    llama_pos last;
    int32_t   n;      // cells placed (page_size when full)
    int32_t   ts;     // step of the last refresh
    float     score;  // its cells' scores at the last step, as params.page_score says
    bool      closed; // no more positions will join: full, or cut by a pinned range
    float     acc;    // h2o: score accumulated over the steps
};

// the graph hook of a policy: the KQ mask layer il attends with (quest narrows it)
// q: [n_embd_head, n_head, n_tokens]; k: the cache view [n_embd_head, n_head_kv, n_kv, 1]
typedef ggml_tensor * (*raas_attn_fn)(const llama_raas & st, llm_graph_result * res, ggml_context * ctx,
        ggml_tensor * q, ggml_tensor * k, ggml_tensor * kq_mask, int il);

// one row per policy kind; null hooks do nothing
struct raas_policy {
    int32_t      kind;          // enum llama_raas_kind
    const char * name;          // as the CLI spells it
    bool         needs_scores;  // the graph computes the last token's attention for observe
    bool         evicts;        // frees pages to hold the budget (dense and quest keep every cell)
    bool         pages;         // keeps the page table of decode positions (dense does not)
    int32_t      page_size;     // forced page size; 0: the caller's
    int32_t      graph_nodes;   // upper bound of the graph nodes build_attn adds per layer

    // the kind's own limits on params beyond the shared ones; "" when they hold
    std::string (*check)(const llama_raas_params & p);
    void (*on_reset)(raas_seq & st);               // after pins and pages are cleared
    void (*observe) (raas_seq & st);               // after a decode step, with scores
    int  (*victim)  (const raas_seq & st);         // page to free, -1 when none can go
    raas_attn_fn build_attn;
};

extern const raas_policy raas_policy_dense;
extern const raas_policy raas_policy_raas;
extern const raas_policy raas_policy_streaming;
extern const raas_policy raas_policy_h2o;
extern const raas_policy raas_policy_quest;

// the row of a kind (raas-policies.cpp); null when this build has none
const raas_policy * raas_policy_find(int32_t kind);

// the policy state of one sequence: its own cells are the cells of its KV stream
struct raas_seq {
    llama_raas_params   params;
    const raas_policy * pol;
    llama_kv_cache *    kv;
    llama_seq_id        seq;

    std::vector<std::pair<llama_pos, llama_pos>> pins;  // [p0, p1), sorted, merged
    std::vector<raas_page> pages;                        // decode pages by position

    int32_t step = 0;
    int64_t n_evicted_pages = 0;
    int64_t n_evicted_cells = 0;
    std::vector<llama_pos> last_evicted;  // first positions freed by the last decode of this sequence

    // running counters, so a step's host work is O(batch + KV view), never O(n_ctx)
    uint32_t  n_pinned     = 0;      // cached cells at pinned positions
    uint32_t  used_known   = 0;      // cells in use when this object last looked
    bool      stale        = true;   // the cache may have changed behind our back: reconcile
    llama_pos batch_last   = -1;     // position of the sequence's last token in the batch (its scores are read)
    int64_t   n_visited    = 0;      // cells and pages the host visited in the last decode

    std::vector<float>     scores;     // last step's scores per cell of the graph's KV view
    std::vector<llama_pos> score_pos;  // position of each of those cells, -1 if empty

    // scores by position for the next decode instead of the graph's (llama_raas_override_scores)
    std::vector<std::pair<llama_pos, float>> score_override;
    bool has_score_override = false;

    raas_seq(const llama_raas_params & params, const raas_policy * pol, llama_kv_cache * kv, llama_seq_id seq)
        : params(params), pol(pol), kv(kv), seq(seq) {}

    bool is_pinned(llama_pos p) const;
    void pin(llama_pos p0, llama_pos p1);
    void reset();

    // the sequence's tokens of a decode: n of them, the last at position last
    bool before_decode(uint32_t n, llama_pos last);
    void after_decode(std::vector<llama_pos> placed);

    // cache facts
    uint32_t  used() const;
    llama_pos newest_pos() const;
    void      get_stats(llama_raas_stats & out);

    void free_page(int i);
    // after the caller's own memory ops: recount pins, drop or cut pages that lost their cells
    void reconcile();
};

// the policy of one llama_context: the kind, shared by its sequences, and one state per sequence
struct llama_raas {
    llama_raas_params   params;
    const raas_policy * pol;
    llama_kv_cache *    kv;
    std::vector<raas_seq> seqs;  // by seq_id, n_seq_max of them

    llama_raas(const llama_raas_params & params, const raas_policy * pol, llama_kv_cache * kv, uint32_t n_seq)
        : params(params), pol(pol), kv(kv) {
        for (uint32_t s = 0; s < n_seq; ++s) {
            seqs.emplace_back(params, pol, kv, (llama_seq_id) s);
        }
    }

    bool needs_scores() const { return pol->needs_scores; }
    // whether layer il's attention counts in the scores (raas: skip_layers)
    bool scores_layer(int il) const { return pol->needs_scores && il >= params.skip_layers; }
    raas_seq * get(llama_seq_id s) { return s >= 0 && (size_t) s < seqs.size() ? &seqs[s] : nullptr; }
    const raas_seq * get(llama_seq_id s) const { return s >= 0 && (size_t) s < seqs.size() ? &seqs[s] : nullptr; }
    void reset();

    // hooks called by llama_context::decode
    bool before_decode(const llama_batch & batch);
    // keeps each stream's scores row for the sequence whose last token of the batch is in this ubatch
    void read_scores(ggml_backend_sched * sched, ggml_tensor * t, const llama_ubatch & ubatch);
    void after_decode(const llama_batch & batch);
    // sums the accumulated attention of each stream's last token over heads and marks it as output
    void finish_graph(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor *& t) const;
};

// the policy's ops in the attention of layer il, called by build_attn: with
// flash attention, adds the last token's attention probabilities to
// res->t_raas_scores when the policy observes scores; returns the KQ mask to
// attend with
ggml_tensor * llama_raas_build_attn(
        const llama_raas  & st,
        llm_graph_result  * res,
        ggml_context      * ctx,
        ggml_cgraph       * gf,
        ggml_tensor       * q,
        ggml_tensor       * k,
        ggml_tensor       * kq_mask,
        float               kq_scale,
        float               max_alibi_bias,
        float               softcap,
        int                 il,
        bool                flash_attn);

// without flash attention, build_attn_mha hands over its softmax kq [n_kv, n_tokens, n_head, 1]:
// returns acc plus the last token's probabilities (the scores, before the sum over heads)
ggml_tensor * llama_raas_observe_attn(const llama_raas & st, ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * acc, ggml_tensor * kq, int il);

// graph nodes the policy adds to a graph of n_layer layers (llama_context::graph_max_nodes)
uint32_t llama_raas_graph_nodes(const llama_raas & st, uint32_t n_layer);

// the context size that picks RoPE factors (LongRoPE long/short): an evicting
// policy sizes the context to its budget while positions keep growing, so it
// picks as dense does at the training context
uint32_t llama_raas_rope_ctx(const llama_raas * st, uint32_t n_ctx_seq, uint32_t n_ctx_train);

// shared by the rules
int32_t raas_n_refresh(float ratio, size_t n_pages);
int32_t raas_h2o_recent(const llama_raas_params & p);
// the page holding the newest position never goes (llama.cpp needs the next position to be max + 1)
bool raas_page_evictable(const raas_page & p, llama_pos newest);

// error reporting for the C API (thread-local)
void raas_set_error(const std::string & msg);
