#pragma once

// raas-local: KV-cache policies inside llama.cpp (compiled in as src/raas/).
//
// One sequence (seq_id 0) in a llama_kv_cache. The cache decides per cell for
// all layers at once, so the policies decide per page of cells:
//   - prompt positions are pinned by the caller and never freed;
//   - decode positions form pages of page_size consecutive positions;
//   - before a batch is placed, pages are freed (seq_rm) until it fits the budget;
//   - after a step, the policy observes the last token's attention scores.
// The exact rule of each policy is in its raas-policy-*.cpp file.

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

struct raas_page {
    llama_pos first;
    llama_pos last;
    int32_t   n;      // cells placed (page_size when full)
    int32_t   ts;     // step of the last refresh
    float     score;  // max cell score at the last step
    bool      closed; // no more positions will join: full, or cut by a pinned range
    float     acc;    // h2o: score accumulated over the steps
};

struct llama_raas {
    llama_raas_params params;
    llama_kv_cache *  kv;

    std::vector<std::pair<llama_pos, llama_pos>> pins;  // [p0, p1), sorted, merged
    std::vector<raas_page> pages;                        // decode pages by position

    int32_t step = 0;
    int64_t n_evicted_pages = 0;
    int64_t n_evicted_cells = 0;
    std::vector<llama_pos> last_evicted;  // first positions freed by the last decode

    std::vector<float>     scores;     // last step's scores per cell of the graph's KV view
    std::vector<llama_pos> score_pos;  // position of each of those cells, -1 if empty

    // scores by position for the next decode instead of the graph's (llama_raas_override_scores)
    std::vector<std::pair<llama_pos, float>> score_override;
    bool has_score_override = false;

    llama_raas(const llama_raas_params & params, llama_kv_cache * kv) : params(params), kv(kv) {}

    bool needs_scores() const;
    bool is_pinned(llama_pos p) const;
    void pin(llama_pos p0, llama_pos p1);
    void reset();

    // hooks called by llama_context::decode
    bool before_decode(const llama_batch & batch);
    void read_scores(ggml_backend_sched * sched, ggml_tensor * t);
    void after_decode(const llama_batch & batch);
    // sums the per-layer attention of the last token over heads and marks it as output
    void finish_graph(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor *& t) const;

    // cache facts
    uint32_t  used() const;
    llama_pos newest_pos() const;
    void      get_stats(llama_raas_stats & out) const;

    // -1 when no page can be freed
    int victim() const;
    void free_page(int i);
};

// the policy's ops in the attention of layer il, called by build_attn: with
// flash attention, adds the last token's attention probabilities to
// res->t_raas_scores when the policy observes scores; returns the KQ mask to
// attend with (quest narrows it)
// q: [n_embd_head, n_head, n_tokens]; k: the cache view [n_embd_head, n_head_kv, n_kv, 1]
ggml_tensor * llama_raas_build_attn(
        const llama_raas  & st,
        llm_graph_result  * res,
        ggml_context      * ctx,
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
ggml_tensor * llama_raas_observe_attn(const llama_raas & st, ggml_context * ctx, ggml_tensor * acc, ggml_tensor * kq);

// per-policy rules (raas-policy-*.cpp): observe runs after a decode step, victim picks the page to free
int32_t raas_n_refresh(float ratio, size_t n_pages);
void raas_policy_raas_observe(llama_raas & st);
int  raas_policy_raas_victim (const llama_raas & st);
int  raas_policy_streaming_victim(const llama_raas & st);
void raas_policy_h2o_observe(llama_raas & st);
int  raas_policy_h2o_victim (const llama_raas & st);
int32_t raas_h2o_recent(const llama_raas_params & p);
ggml_tensor * raas_policy_quest_mask(const llama_raas & st, llm_graph_result * res, ggml_context * ctx,
        ggml_tensor * q, ggml_tensor * k, ggml_tensor * kq_mask, int il);

// error reporting for the C API (thread-local)
void raas_set_error(const std::string & msg);
