// raas-local: the policy state of one llama_context and the hooks of llama_context::decode.
// Which page to free and how pages age are per policy: raas-policy-*.cpp.

#include "raas.h"

#include "llama-kv-cache.h"
#include "llama-kv-cells.h"

#include "ggml-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

bool llama_raas::needs_scores() const {
    return params.kind == LLAMA_RAAS_KIND_RAAS || params.kind == LLAMA_RAAS_KIND_H2O;
}

bool llama_raas::is_pinned(llama_pos p) const {
    // pins are few (one range per chat turn): a linear scan is cheapest
    for (const auto & r : pins) {
        if (p >= r.first && p < r.second) {
            return true;
        }
    }
    return false;
}

void llama_raas::pin(llama_pos p0, llama_pos p1) {
    pins.emplace_back(p0, p1);
    std::sort(pins.begin(), pins.end());
    std::vector<std::pair<llama_pos, llama_pos>> merged;
    for (const auto & r : pins) {
        if (!merged.empty() && r.first <= merged.back().second) {
            merged.back().second = std::max(merged.back().second, r.second);
        } else {
            merged.push_back(r);
        }
    }
    pins = std::move(merged);
}

void llama_raas::reset() {
    pins.clear();
    pages.clear();
    step = 0;
    n_evicted_pages = 0;
    n_evicted_cells = 0;
    last_evicted.clear();
    scores.clear();
    score_pos.clear();
    score_override.clear();
    has_score_override = false;
    if (params.kind == LLAMA_RAAS_KIND_STREAMING && params.n_sink > 0) {
        pin(0, params.n_sink); // the attention sinks: the first positions of the sequence
    }
}

uint32_t llama_raas::used() const {
    return kv->get_cells(0).get_used();
}

llama_pos llama_raas::newest_pos() const {
    return kv->seq_pos_max(0);
}

int llama_raas::victim() const {
    switch (params.kind) {
        case LLAMA_RAAS_KIND_RAAS:      return raas_policy_raas_victim(*this);
        case LLAMA_RAAS_KIND_STREAMING: return raas_policy_streaming_victim(*this);
        case LLAMA_RAAS_KIND_H2O:       return raas_policy_h2o_victim(*this);
        default:                        return -1;
    }
}

void llama_raas::free_page(int i) {
    const raas_page p = pages[i];
    const uint32_t before = used();
    kv->seq_rm(0, p.first, p.last + 1);
    n_evicted_pages += 1;
    n_evicted_cells += before - used();
    last_evicted.push_back(p.first);
    pages.erase(pages.begin() + i);
}

bool llama_raas::before_decode(const llama_batch & batch) {
    last_evicted.clear();
    if (params.kind == LLAMA_RAAS_KIND_DENSE || params.kind == LLAMA_RAAS_KIND_QUEST) {
        return true; // nothing is evicted
    }
    const uint32_t n      = batch.n_tokens;
    const uint32_t budget = params.budget;
    while (used() + n > budget) {
        const int v = victim();
        if (v < 0) {
            char buf[256];
            snprintf(buf, sizeof(buf),
                    "KV budget %u cannot take %u more tokens: %u cells in use and no full decode page to free",
                    budget, n, used());
            raas_set_error(buf);
            return false;
        }
        free_page(v);
    }
    return true;
}

void llama_raas::read_scores(ggml_backend_sched * sched, ggml_tensor * t) {
    if (!t) {
        scores.clear();
        return;
    }
    ggml_backend_t backend = ggml_backend_sched_get_tensor_backend(sched, t);
    scores.resize(ggml_nelements(t));
    ggml_backend_tensor_get_async(backend, t, scores.data(), 0, ggml_nbytes(t));
    ggml_backend_synchronize(backend);
}

static void raas_place(llama_raas & st, llama_pos p) {
    auto & pages = st.pages;
    if (!pages.empty()) {
        raas_page & b = pages.back();
        if (!b.closed && p == b.last + 1) {
            b.last = p;
            b.n   += 1;
            b.closed = b.n >= st.params.page_size;
            return;
        }
        b.closed = true;
    }
    pages.push_back({p, p, 1, st.step, 0.0f, st.params.page_size <= 1, 0.0f});
}

void llama_raas::after_decode(const llama_batch & batch) {
    if (params.kind == LLAMA_RAAS_KIND_DENSE) {
        return;
    }

    std::vector<llama_pos> placed(batch.pos, batch.pos + batch.n_tokens);
    std::sort(placed.begin(), placed.end());

    bool decode_step = false;
    for (llama_pos p : placed) {
        decode_step |= !is_pinned(p);
    }
    if (decode_step) {
        step += 1;
    }
    for (llama_pos p : placed) {
        if (is_pinned(p)) {
            if (!pages.empty()) {
                pages.back().closed = true; // a pinned range cuts the open page
            }
        } else {
            raas_place(*this, p);
        }
    }

    const auto & cells = kv->get_cells(0);
    if (has_score_override) {
        std::sort(score_override.begin(), score_override.end());
        scores.assign(cells.size(), 0.0f);
        for (uint32_t i = 0; i < cells.size(); ++i) {
            if (cells.is_empty(i)) {
                continue;
            }
            auto it = std::lower_bound(score_override.begin(), score_override.end(),
                    std::make_pair(cells.pos_get(i), -INFINITY));
            if (it != score_override.end() && it->first == cells.pos_get(i)) {
                scores[i] = it->second;
            }
        }
        has_score_override = false;
        score_override.clear();
    }

    // per page: cells still cached and the max score of the last step
    score_pos.assign(scores.size(), -1);
    std::vector<int32_t> count(pages.size(), 0);
    std::vector<float>   best (pages.size(), 0.0f);
    for (uint32_t i = 0; i < cells.size(); ++i) {
        if (cells.is_empty(i)) {
            continue;
        }
        const llama_pos p = cells.pos_get(i);
        const bool has_score = i < scores.size();
        if (has_score) {
            score_pos[i] = p;
        }
        auto it = std::upper_bound(pages.begin(), pages.end(), p,
                [](llama_pos v, const raas_page & pg) { return v < pg.first; });
        if (it == pages.begin()) {
            continue;
        }
        const size_t j = (it - pages.begin()) - 1;
        if (p > pages[j].last) {
            continue;
        }
        const float s = has_score ? scores[i] : 0.0f;
        best[j]  = count[j] == 0 ? s : std::max(best[j], s);
        count[j] += 1;
    }
    // pages whose cells were all removed by the caller (llama_memory_seq_rm) are forgotten
    size_t w = 0;
    for (size_t j = 0; j < pages.size(); ++j) {
        if (count[j] == 0) {
            continue;
        }
        pages[j].score = best[j];
        pages[w++] = pages[j];
    }
    pages.resize(w);

    if (decode_step && needs_scores() && !scores.empty()) {
        switch (params.kind) {
            case LLAMA_RAAS_KIND_RAAS: raas_policy_raas_observe(*this); break;
            case LLAMA_RAAS_KIND_H2O:  raas_policy_h2o_observe(*this);  break;
            default: break;
        }
    }
}

void llama_raas::get_stats(llama_raas_stats & out) const {
    const auto & cells = kv->get_cells(0);
    int32_t n_used = 0;
    int32_t n_pinned = 0;
    for (uint32_t i = 0; i < cells.size(); ++i) {
        if (cells.is_empty(i)) {
            continue;
        }
        n_used   += 1;
        n_pinned += is_pinned(cells.pos_get(i)) ? 1 : 0;
    }
    out = {};
    out.budget         = params.kind == LLAMA_RAAS_KIND_DENSE ? (int32_t) cells.size() : params.budget;
    out.n_cells        = (int32_t) cells.size();
    out.used           = n_used;
    out.pinned         = n_pinned;
    out.decode_cells   = n_used - n_pinned;
    out.pages          = (int32_t) pages.size();
    out.step           = step;
    out.evictions      = n_evicted_pages;
    out.evicted_cells  = n_evicted_cells;
    out.newest_pos     = newest_pos();
    out.last_evictions = (int32_t) last_evicted.size();
}
