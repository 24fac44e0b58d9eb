// raas-local: the score signal as ggml ops, so it runs on every backend
// (CPU, CUDA): for the last token of each KV stream of the ubatch (one stream
// per sequence), the attention probabilities per head, accumulated over the
// scored layers (all but the first params.skip_layers) as
// [n_kv, 1, n_head, n_stream], then summed (or maxed) over heads once per graph.
// Each layer's add is expanded into the graph right where it is built: ggml-alloc
// frees a tensor once its last consumer (views included) has run, so a layer's
// softmax (n_kv x n_tokens x n_head floats) is freed within the layer, as in a
// graph without scores; expanded only at the end, every layer's softmax would
// stay alive to the end of the graph.
// Without flash attention the graph holds those probabilities already (the
// softmax in build_attn_mha): one add per layer reads them. Flash attention
// never materializes them, so there the last token's softmax(q k^T * scale +
// mask) is recomputed: one [n_kv x d] by [d x n_head] product, a softmax and an
// add per layer.

#include "raas.h"

#include "llama-graph.h"

#include "ggml.h"

#include <algorithm>
#include <cmath>

// acc + kq, with kq consumed now: a copy when acc is empty, so no view keeps kq's source alive
static ggml_tensor * raas_accumulate(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * acc, ggml_tensor * kq) {
    acc = acc ? ggml_add(ctx, acc, kq) : ggml_cont(ctx, kq);
    ggml_build_forward_expand(gf, acc);
    return acc;
}

static ggml_tensor * raas_build_scores(
        ggml_context * ctx,
        ggml_cgraph  * gf,
        ggml_tensor  * acc,
        ggml_tensor  * q,
        ggml_tensor  * k,
        ggml_tensor  * kq_mask,
        float          kq_scale,
        float          max_alibi_bias,
        float          softcap) {
    // q: [d, n_head, n_tokens], the tokens of each stream in turn; k: [d, n_head_kv, n_kv, n_stream]
    const int64_t n_stream = k->ne[3];
    const int64_t n_tps    = q->ne[2]/n_stream;

    // each stream's last query: [d, n_head, 1, n_stream] -> [d, 1, n_head, n_stream]
    ggml_tensor * ql = ggml_view_4d(ctx, q, q->ne[0], q->ne[1], 1, n_stream, q->nb[1], q->nb[2], q->nb[2]*n_tps, (n_tps - 1)*q->nb[2]);
    ql = ggml_permute(ctx, ql, 0, 2, 1, 3);
    // keys: [d, n_head_kv, n_kv, n_stream] -> [d, n_kv, n_head_kv, n_stream]; heads broadcast as in GQA
    ggml_tensor * kp = ggml_permute(ctx, k, 0, 2, 1, 3);

    ggml_tensor * kq = ggml_mul_mat(ctx, kp, ql); // [n_kv, 1, n_head, n_stream]
    ggml_prec_set_acc(kq, GGML_PREC_F32);

    if (softcap > 0.0f) {
        // as llama.cpp's non-flash path does it
        kq = ggml_scale(ctx, kq, 1.0f / softcap);
        kq = ggml_tanh (ctx, kq);
        kq = ggml_scale(ctx, kq, softcap);
    }

    // the mask row of each stream's last token: the mask is [n_kv, n_tps, 1, n_stream]
    ggml_tensor * m = ggml_view_4d(ctx, kq_mask, kq_mask->ne[0], 1, 1, n_stream, kq_mask->nb[1], kq_mask->nb[2], kq_mask->nb[3],
            (n_tps - 1)*kq_mask->nb[1]);
    kq = ggml_soft_max_ext(ctx, kq, m, kq_scale, max_alibi_bias);

    if (!acc) {
        ggml_build_forward_expand(gf, kq); // a fresh tensor: no copy needed
        return kq;
    }
    return raas_accumulate(ctx, gf, acc, kq);
}

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
        bool                flash_attn) {
    if (st.scores_layer(il) && flash_attn) {
        res->t_raas_scores = raas_build_scores(ctx, gf, res->t_raas_scores, q, k, kq_mask, kq_scale, max_alibi_bias, softcap);
    }
    if (st.pol->build_attn) {
        return st.pol->build_attn(st, res, ctx, q, k, kq_mask, il);
    }
    return kq_mask;
}

ggml_tensor * llama_raas_observe_attn(const llama_raas & st, ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * acc, ggml_tensor * kq, int il) {
    if (!st.scores_layer(il)) {
        return acc;
    }
    // [n_kv, n_tps, n_head, n_stream] -> each stream's last token's row of every head
    ggml_tensor * last = ggml_view_4d(ctx, kq, kq->ne[0], 1, kq->ne[2], kq->ne[3], kq->nb[1], kq->nb[2], kq->nb[3],
            (kq->ne[1] - 1)*kq->nb[1]);
    return raas_accumulate(ctx, gf, acc, last);
}

uint32_t llama_raas_graph_nodes(const llama_raas & st, uint32_t n_layer) {
    // per layer: the scores (flash attention recomputes them: at most 12 nodes), the policy's mask ops;
    // once: the sum over heads
    const uint32_t per_layer = (st.needs_scores() ? 12 : 0) + (uint32_t) st.pol->graph_nodes;
    return per_layer*n_layer + 8;
}

uint32_t llama_raas_rope_ctx(const llama_raas * st, uint32_t n_ctx_seq, uint32_t n_ctx_train) {
    return st && st->pol->evicts ? std::max(n_ctx_seq, n_ctx_train) : n_ctx_seq;
}

void llama_raas::finish_graph(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor *& t) const {
    if (!t) {
        return;
    }
    // [n_kv, 1, n_head, n_stream] -> [n_head, n_kv, 1, n_stream] -> over heads (sum, or max: a 1-d max
    // pool as wide as a row) -> [n_kv, n_stream]
    const int64_t n_kv   = t->ne[0];
    const int     n_head = (int) t->ne[2];
    ggml_tensor * s = ggml_cont(ctx, ggml_permute(ctx, t, 1, 2, 0, 3));
    s = params.head_agg == LLAMA_RAAS_HEAD_MAX ? ggml_pool_1d(ctx, s, GGML_OP_POOL_MAX, n_head, n_head, 0)
                                               : ggml_sum_rows(ctx, s);
    s = ggml_reshape_2d(ctx, s, n_kv, t->ne[3]);
    ggml_set_name(s, "raas_scores");
    ggml_set_output(s);
    ggml_build_forward_expand(gf, s);
    t = s;
}
