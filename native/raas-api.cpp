// raas-local: the C API of include/llama.h (llama_raas_*).

#include "raas.h"

#include "llama-arch.h"
#include "llama-context.h"
#include "llama-kv-cache.h"
#include "llama-model.h"

#include <cstdio>
#include <string>

// bump when the C API or the policy semantics change; raas_local checks it
#define LLAMA_RAAS_VERSION 5

static thread_local std::string g_raas_error;

void raas_set_error(const std::string & msg) {
    g_raas_error = msg;
}

static int32_t fail(int32_t code, const std::string & msg) {
    raas_set_error(msg);
    return code;
}

int32_t llama_raas_version(void) {
    return LLAMA_RAAS_VERSION;
}

const char * llama_raas_last_error(void) {
    return g_raas_error.c_str();
}

llama_raas_params llama_raas_default_params(void) {
    llama_raas_params p = {};
    p.kind          = LLAMA_RAAS_KIND_RAAS;
    p.budget        = 512;
    p.page_size     = 16;
    p.refresh_ratio = 0.25f;               // raas: the shipped default (raas_local/policies/raas.py;
    p.page_score    = LLAMA_RAAS_PAGE_MEAN; // the paper setting is 0.5 and PAGE_MAX, docs/raas-policy.md)
    p.n_sink        = 4;
    p.heavy_ratio   = 0.5f;
    return p;
}

// why a model's memory is not a plain KV cache, for the refusal message
static std::string memory_kind(const llama_model & model) {
    if (llm_arch_is_hybrid(model.arch))    return "hybrid (attention + recurrent) memory";
    if (llm_arch_is_recurrent(model.arch)) return "recurrent memory";
    if (model.hparams.swa_type != LLAMA_SWA_TYPE_NONE) return "an interleaved sliding-window (iSWA) cache";
    return "a KV cache this policy does not know";
}

int32_t llama_raas_set_policy(llama_context * ctx, const llama_raas_params * params) {
    if (!ctx || !params) {
        return fail(-1, "null context or params");
    }
    llama_raas_params p = *params;
    const raas_policy * pol = raas_policy_find(p.kind);
    if (!pol) {
        return fail(-2, "policy kind " + std::to_string(p.kind) + " is not implemented in this build");
    }
    if (pol->page_size > 0) {
        p.page_size = pol->page_size;
    }
    const llama_model & model = ctx->get_model();
    const std::string arch = llm_arch_name(model.arch);
    const std::string name = pol->name;
    // a policy that neither pages, observes nor masks is stock llama.cpp: it runs on any memory
    const bool stock = !pol->pages && !pol->needs_scores && !pol->build_attn;

    if (p.page_size < 1) {
        return fail(-3, "page size must be at least 1, got " + std::to_string(p.page_size));
    }
    if (!(p.refresh_ratio > 0.0f && p.refresh_ratio <= 1.0f)) {
        return fail(-3, "refresh ratio must be in (0, 1], got " + std::to_string(p.refresh_ratio));
    }
    if (p.n_sink < 0) {
        return fail(-3, "sink count must be >= 0, got " + std::to_string(p.n_sink));
    }
    if (!(p.heavy_ratio >= 0.0f && p.heavy_ratio < 1.0f)) {
        return fail(-3, "heavy-hitter ratio must be in [0, 1), got " + std::to_string(p.heavy_ratio));
    }

    auto * kv = dynamic_cast<llama_kv_cache *>(ctx->get_memory());
    if (!kv) {
        if (stock) {
            ctx->set_raas(nullptr); // stock llama.cpp serves it; no stats
            return 0;
        }
        return fail(-4, "policy " + name + " cannot serve " + arch + ": it uses " + memory_kind(model) +
                ", not one KV cache; use --policy dense");
    }
    if (stock) {
        p.budget = (int32_t) kv->get_size(); // every cell of the context
    } else {
        if (model.hparams.is_mla()) {
            return fail(-4, "policy " + name + " cannot serve " + arch + ": multi-head latent attention (MLA) is not supported; use --policy dense");
        }
        if (kv->get_n_stream() != ctx->get_cparams().n_seq_max) {
            return fail(-4, "policy " + name + " serves several sequences only with one KV stream each; "
                    "create the context with kv_unified = false");
        }
        if (p.budget < 2*p.page_size) {
            return fail(-3, "budget " + std::to_string(p.budget) + " is below two pages (" +
                    std::to_string(2*p.page_size) + " cells at page size " + std::to_string(p.page_size) + ")");
        }
        if (pol->check) {
            const std::string why = pol->check(p);
            if (!why.empty()) {
                return fail(-3, why);
            }
        }
        if (pol->evicts && (uint32_t) p.budget > kv->get_size()) {
            return fail(-3, "budget " + std::to_string(p.budget) + " exceeds the " + std::to_string(kv->get_size()) +
                    " KV cells of this context; create it with n_ctx >= budget");
        }
    }
    ctx->set_raas(std::make_unique<llama_raas>(p, pol, kv, ctx->get_cparams().n_seq_max));
    ctx->raas->reset(); // pins the streaming sinks
    return 0;
}

// the state of seq_id, or null with the reason set
static raas_seq * seq_of(const llama_context * ctx, llama_seq_id seq_id) {
    if (!ctx || !ctx->raas) {
        raas_set_error("no raas policy set on this context");
        return nullptr;
    }
    raas_seq * st = ctx->raas->get(seq_id);
    if (!st) {
        raas_set_error("sequence " + std::to_string(seq_id) + " is not in [0, " + std::to_string(ctx->raas->seqs.size()) +
                "): create the context with n_seq_max above it");
    }
    return st;
}

int32_t llama_raas_pin(llama_context * ctx, llama_seq_id seq_id, llama_pos p0, llama_pos p1) {
    raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    if (p0 < 0 || p1 < p0) {
        return fail(-3, "bad pin range [" + std::to_string(p0) + ", " + std::to_string(p1) + ")");
    }
    st->pin(p0, p1);
    return 0;
}

void llama_raas_reset(llama_context * ctx) {
    if (ctx && ctx->raas) {
        ctx->raas->reset();
    }
}

int32_t llama_raas_clear_seq(llama_context * ctx, llama_seq_id seq_id) {
    raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    st->kv->seq_rm(seq_id, -1, -1);
    st->reset();
    return 0;
}

int32_t llama_raas_move_seq(llama_context * ctx, llama_seq_id src, llama_seq_id dst) {
    raas_seq * a = seq_of(ctx, src);
    raas_seq * b = seq_of(ctx, dst);
    if (!a || !b) {
        return -1;
    }
    if (src == dst) {
        return 0;
    }
    if (b->used() > 0) {
        return fail(-3, "sequence " + std::to_string(dst) + " holds cells; clear it before moving another into it");
    }
    // the cells: a whole-stream copy (llama.cpp does it at the next update) and the source's removal
    a->kv->seq_cp(src, dst, -1, -1);
    a->kv->seq_rm(src, -1, -1);
    // the state: positions, pages and counters carry over; the cell counts are read again
    raas_seq moved = *a;
    moved.seq   = dst;
    moved.stale = true;
    *b = moved;
    a->reset();
    return 0;
}

int32_t llama_raas_get_stats(const llama_context * ctx, llama_seq_id seq_id, llama_raas_stats * out) {
    raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    if (!out) {
        return fail(-1, "null output pointer");
    }
    st->get_stats(*out);
    return 0;
}

int32_t llama_raas_get_pages(const llama_context * ctx, llama_seq_id seq_id, llama_raas_page_info * out, int32_t n_max) {
    const raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    const auto & pages = st->pages;
    for (int32_t i = 0; out && i < (int32_t) pages.size() && i < n_max; ++i) {
        const raas_page & p = pages[i];
        out[i] = {p.first, p.last, p.n, p.ts, p.score, p.closed ? 1 : 0, p.acc};
    }
    return (int32_t) pages.size();
}

int32_t llama_raas_get_scores(const llama_context * ctx, llama_seq_id seq_id, llama_pos * pos, float * score, int32_t n_max) {
    const raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    const auto & r = *st;
    int32_t n = 0;
    for (size_t i = 0; i < r.score_pos.size(); ++i) {
        if (r.score_pos[i] < 0) {
            continue;
        }
        if (n < n_max) {
            if (pos) {
                pos[n] = r.score_pos[i];
            }
            if (score) {
                score[n] = r.scores[i];
            }
        }
        n++;
    }
    return n;
}

int32_t llama_raas_get_evicted(const llama_context * ctx, llama_seq_id seq_id, llama_pos * first_pos, int32_t n_max) {
    const raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    const auto & ev = st->last_evicted;
    for (int32_t i = 0; first_pos && i < (int32_t) ev.size() && i < n_max; ++i) {
        first_pos[i] = ev[i];
    }
    return (int32_t) ev.size();
}

int32_t llama_raas_override_scores(llama_context * ctx, llama_seq_id seq_id, const llama_pos * pos, const float * score, int32_t n) {
    raas_seq * st = seq_of(ctx, seq_id);
    if (!st) {
        return -1;
    }
    if (n > 0 && (!pos || !score)) {
        return fail(-1, "null positions or scores");
    }
    st->score_override.clear();
    for (int32_t i = 0; i < n; ++i) {
        st->score_override.emplace_back(pos[i], score[i]);
    }
    st->has_score_override = true;
    return 0;
}

size_t llama_raas_compute_buffer_size(const llama_context * ctx) {
    size_t total = 0;
    if (ctx) {
        for (const auto & [buft, mem] : ctx->memory_breakdown()) {
            total += mem.compute;
        }
    }
    return total;
}
