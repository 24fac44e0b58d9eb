// raas-local: Quest (Tang et al., arXiv 2406.10774), query-aware page selection.
//
// Every cell stays cached (memory O(N)). At a decode step (one-token ubatch),
// in every layer from RAAS_QUEST_DENSE_LAYERS on, each query head attends
// only the cells of its top budget/page_size pages, ranked by Quest's upper
// bound of q.k over the page:
//     ub(P) = sum_d max(q_d * max_{c in P} k_cd, q_d * min_{c in P} k_cd)
//           = q+ . kmax(P) + q- . kmin(P)      (q+ = max(q, 0), q- = min(q, 0))
// The page holding the current token is always attended; pages with no cell
// of the sequence never are. Prefill is dense, as in Quest. With several
// sequences each decodes one token in its own KV stream, whose cells are the
// sequence's own: the bounds, the ranking and the mask are per stream.
//
// Pages are page_size consecutive cells of the KV buffer (Quest's chunks); the
// per-page key bounds are recomputed from the cache every step.
//
// Implemented as a MASK, not a gather: the selection becomes a per-head -inf
// mask added to llama.cpp's KQ mask, so attention still runs over all n_kv
// cells. It reproduces which cells Quest attends, not its speed: per layer
// the step adds O(N * n_embd_k_gqa) work (cast, two max-pools, a negation)
// plus two [d x n_pages] products per head and an argsort of n_pages. A gather
// (ggml_get_rows of the selected pages per KV head) would make attention O(L)
// but needs per-head gathers of K and V and is left for later.
// tests/reference/quest_policy.py is the plain-Python model of this rule.

#include "raas.h"

#include "llama-batch.h"
#include "llama-graph.h"
#include "llama-kv-cache.h"
#include "llama-kv-cells.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <algorithm>
#include <string>
#include <vector>

static const char * QUEST_BIAS_NAME = "raas_quest_bias";

// Quest leaves the first layers dense: their attention is not sparse enough
static const int RAAS_QUEST_DENSE_LAYERS = 2;

// a page bonus per stream filled before each step: -1e30 for pages with no cell
// of the stream's sequence, +1e30 for the page of its current token, 0 otherwise
class raas_quest_input : public llm_graph_input_i {
public:
    raas_quest_input(const llama_raas & st, ggml_tensor * bias) : st(st), bias(bias) {}

    void set_input(const llama_ubatch * ubatch) override {
        const int64_t n_pages  = bias->ne[0];
        const int64_t n_stream = bias->ne[3];
        const int64_t page     = st.params.page_size;

        std::vector<float> b(n_pages*n_stream, -1e30f);
        for (int64_t s = 0; s < n_stream; ++s) {
            // one token per stream at a decode step, streams in sequence order
            const llama_seq_id seq = ubatch->seq_id_unq[s];
            const llama_pos cur    = ubatch->pos[s];
            const auto & cells     = st.kv->get_cells(seq);
            const uint32_t n = (uint32_t) std::min<int64_t>(n_pages*page, cells.size());
            for (uint32_t i = 0; i < n; ++i) {
                if (cells.is_empty(i) || !cells.seq_has(i, seq) || cells.pos_get(i) > cur) {
                    continue;
                }
                float & v = b[s*n_pages + i/page];
                v = cells.pos_get(i) == cur ? 1e30f : std::max(v, 0.0f);
            }
        }
        ggml_backend_tensor_set(bias, b.data(), 0, ggml_nbytes(bias));
    }

    // the ops depend on the KV view's size and the number of streams only; set_input refills the bonus every step
    bool can_reuse(const llm_graph_params & params) override {
        const auto * mctx = static_cast<const llama_kv_cache_context *>(params.mctx);
        return mctx && params.ubatch.n_tokens == (uint32_t) bias->ne[3] && params.ubatch.n_seqs_unq == (uint32_t) bias->ne[3] &&
            (int64_t) mctx->get_n_kv() == bias->ne[0]*st.params.page_size;
    }

private:
    const llama_raas & st;
    ggml_tensor * bias;
};

static ggml_tensor * quest_mask(
        const llama_raas  & st,
        llm_graph_result  * res,
        ggml_context      * ctx,
        ggml_tensor       * q,
        ggml_tensor       * k,
        ggml_tensor       * kq_mask,
        int                 il) {
    const int64_t page     = st.params.page_size;
    const int64_t d        = k->ne[0];
    const int64_t n_hkv    = k->ne[1];
    const int64_t n_kv     = k->ne[2];
    const int64_t n_stream = k->ne[3];
    const int64_t n_head   = q->ne[1];
    const int64_t n_pages  = n_kv/page;
    const int64_t top      = st.params.budget/page;

    if (q->ne[2] != n_stream || il < RAAS_QUEST_DENSE_LAYERS || n_pages <= top) {
        return kq_mask; // prefill, a dense layer, or every page fits the budget
    }
    GGML_ASSERT(n_kv % page == 0 && kq_mask->ne[1] == 1 && kq_mask->ne[3] == n_stream);

    ggml_tensor * bias = ggml_get_tensor(ctx, QUEST_BIAS_NAME);
    if (!bias) {
        bias = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, n_pages, 1, 1, n_stream);
        ggml_set_name(bias, QUEST_BIAS_NAME);
        ggml_set_input(bias);
        res->add_input(std::make_unique<raas_quest_input>(st, bias));
    }

    // per stream, page and channel: max and min of the keys, [n_embd_k_gqa, n_pages, n_stream]
    ggml_tensor * kf   = ggml_cast(ctx, ggml_view_3d(ctx, k, d*n_hkv, n_kv, n_stream, k->nb[2], k->nb[3], 0), GGML_TYPE_F32);
    ggml_tensor * kmax = ggml_pool_2d(ctx, kf, GGML_OP_POOL_MAX, 1, page, 1, page, 0, 0);
    ggml_tensor * kmin = ggml_neg(ctx, ggml_pool_2d(ctx, ggml_neg(ctx, kf), GGML_OP_POOL_MAX, 1, page, 1, page, 0, 0));
    // [d, n_pages, n_hkv, n_stream]: query heads broadcast over KV heads as in attention (GQA)
    kmax = ggml_permute(ctx, ggml_reshape_4d(ctx, kmax, d, n_hkv, n_pages, n_stream), 0, 2, 1, 3);
    kmin = ggml_permute(ctx, ggml_reshape_4d(ctx, kmin, d, n_hkv, n_pages, n_stream), 0, 2, 1, 3);

    // the query split by sign: [d, 1, n_head, n_stream]
    ggml_tensor * qc = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, q, d, n_head, 1, n_stream), 0, 2, 1, 3));
    ggml_tensor * qp = ggml_relu(ctx, qc);
    ggml_tensor * qn = ggml_sub(ctx, qc, qp);

    ggml_tensor * ub = ggml_add(ctx, ggml_mul_mat(ctx, kmax, qp), ggml_mul_mat(ctx, kmin, qn)); // [n_pages, 1, n_head, n_stream]
    ub = ggml_add(ctx, ub, bias);

    // threshold per head and stream: the top-th largest bound
    const int64_t n_rows = n_head*n_stream;
    ggml_tensor * order = ggml_argsort(ctx, ggml_reshape_2d(ctx, ub, n_pages, n_rows), GGML_SORT_ORDER_DESC);
    ggml_tensor * kth   = ggml_view_2d(ctx, order, 1, n_rows, order->nb[1], (top - 1)*order->nb[0]);
    ggml_tensor * thr   = ggml_get_rows(ctx, ggml_reshape_3d(ctx, ub, 1, n_pages, n_rows), kth); // [1, 1, n_rows]

    // -1e30 on the pages below the threshold, 0 on the others, per cell, head and stream
    ggml_tensor * off = ggml_step(ctx, ggml_scale(ctx, ggml_sub(ctx, ggml_reshape_3d(ctx, ub, n_pages, 1, n_rows), thr), -1.0f)); // 1 below
    off = ggml_scale(ctx, off, -1e30f);
    off = ggml_repeat_4d(ctx, ggml_reshape_4d(ctx, off, 1, n_pages, n_rows, 1), page, n_pages, n_rows, 1);
    off = ggml_reshape_4d(ctx, off, n_kv, 1, n_head, n_stream);

    const bool f16 = kq_mask->type == GGML_TYPE_F16; // flash attention takes an F16 mask
    ggml_tensor * m = f16 ? ggml_cast(ctx, kq_mask, GGML_TYPE_F32) : kq_mask;
    m = ggml_add(ctx, off, m);
    return f16 ? ggml_cast(ctx, m, GGML_TYPE_F16) : m;
}

static std::string quest_check(const llama_raas_params & p) {
    if (256 % p.page_size != 0) {
        // llama.cpp pads the KV view to 256 cells; quest's pages must tile it
        return "quest needs a page size that divides 256, got " + std::to_string(p.page_size);
    }
    return "";
}

const raas_policy raas_policy_quest = {
    /*.kind         =*/ LLAMA_RAAS_KIND_QUEST,
    /*.name         =*/ "quest",
    /*.needs_scores =*/ false,
    /*.evicts       =*/ false,
    /*.pages        =*/ true,
    /*.page_size    =*/ 0,
    /*.graph_nodes  =*/ 44, // bounds, pools, two products, argsort, threshold, mask casts, stream reshapes
    /*.check        =*/ quest_check,
    /*.on_reset     =*/ nullptr,
    /*.observe      =*/ nullptr,
    /*.victim       =*/ nullptr,
    /*.build_attn   =*/ quest_mask,
};
