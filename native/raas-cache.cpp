// raas-local: the policy state of one llama_context and the hooks of llama_context::decode.
// Which page to free and how pages age are per policy: raas-policy-*.cpp.
// Each sequence (raas_seq) keeps its own state and sees only its own cells (its
// KV stream); llama_raas splits a batch by sequence and hands each its part.
//
// A step's host work is O(batch + KV view + pages), never O(n_ctx) or O(tokens
// seen): cells in use and pinned are running counters, scores are read once per
// decode, and the cache is rescanned only after the caller changed it itself
// (llama_memory_seq_rm, a failed decode, a clear), which `used` reveals.

#include "raas.h"

#include "llama-batch.h"
#include "llama-kv-cache.h"
#include "llama-kv-cells.h"

#include "ggml-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

bool raas_page_evictable(const raas_page & p, llama_pos newest) {
    return p.closed && !(newest >= p.first && newest <= p.last);
}

bool raas_seq::is_pinned(llama_pos p) const {
    // pins are few (one range per chat turn): a linear scan is cheapest
    for (const auto & r : pins) {
        if (p >= r.first && p < r.second) {
            return true;
        }
    }
    return false;
}

void raas_seq::pin(llama_pos p0, llama_pos p1) {
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
    stale = true; // cells already cached may now count as pinned
}

void raas_seq::reset() {
    pins.clear();
    n_pinned = 0;
    pages.clear();
    step = 0;
    n_evicted_pages = 0;
    n_evicted_cells = 0;
    last_evicted.clear();
    scores.clear();
    score_pos.clear();
    score_override.clear();
    has_score_override = false;
    batch_last = -1;
    if (pol->on_reset) {
        pol->on_reset(*this);
    }
    stale = true;
}

uint32_t raas_seq::used() const {
    return kv->get_cells(seq).get_used(); // the sequence's stream holds its cells only
}

llama_pos raas_seq::newest_pos() const {
    return kv->seq_pos_max(seq);
}

void raas_seq::free_page(int i) {
    const raas_page p = pages[i];
    const uint32_t before = used();
    kv->seq_rm(seq, p.first, p.last + 1);
    n_evicted_pages += 1;
    n_evicted_cells += before - used();
    last_evicted.push_back(p.first);
    pages.erase(pages.begin() + i);
    used_known = used();
}

void raas_seq::reconcile() {
    // the cells of the sequence by position: visit only the pinned and paged ranges
    const auto & sp = kv->get_cells(seq).seq_pos_get(seq);
    auto count_in = [&](llama_pos p0, llama_pos p1, llama_pos & max_pos) {
        uint32_t n = 0;
        for (auto it = sp.lower_bound({p0, 0}); it != sp.end() && it->first < p1; ++it) {
            n += 1;
            max_pos = it->first;
        }
        n_visited += n + 1;
        return n;
    };
    llama_pos ignored = -1;
    n_pinned = 0;
    for (const auto & r : pins) {
        n_pinned += count_in(r.first, r.second, ignored);
    }
    // pages whose cells are all gone are forgotten; a page whose tail is gone
    // ends at its last cached position
    size_t w = 0;
    bool cut_last = false;
    for (size_t j = 0; j < pages.size(); ++j) {
        raas_page pg = pages[j];
        llama_pos last = -1;
        if (count_in(pg.first, pg.last + 1, last) == 0) {
            continue;
        }
        cut_last = last < pg.last;
        if (cut_last) {
            pg.last   = last;
            pg.n      = last - pg.first + 1;
            pg.closed = true; // a page cut in the middle of the sequence never grows again
        }
        pages[w++] = pg;
    }
    pages.resize(w);
    // after seq_rm(p, -1) the newest page grows again from p unless it is full
    if (!pages.empty() && cut_last && pages.back().last == newest_pos()) {
        pages.back().closed = pages.back().n >= params.page_size;
    }
    used_known = used();
    stale = false;
}

bool raas_seq::before_decode(uint32_t n, llama_pos last) {
    last_evicted.clear();
    scores.clear(); // read again from the ubatch holding the sequence's last token, or none
    n_visited = 0;
    batch_last = last;
    if (stale || used() != used_known) {
        reconcile();
    }
    if (!pol->evicts) {
        return true;
    }
    const uint32_t budget = params.budget;
    while (used() + n > budget) {
        n_visited += (int64_t) pages.size();
        const int v = pol->victim(*this);
        if (v < 0) {
            char buf[256];
            snprintf(buf, sizeof(buf),
                    "KV budget %u cannot take %u more tokens: %u cells in use and no full decode page to free%s",
                    budget, n, used(), seq > 0 ? (" (sequence " + std::to_string(seq) + ")").c_str() : "");
            raas_set_error(buf);
            return false;
        }
        free_page(v);
    }
    return true;
}

static void raas_place(raas_seq & st, llama_pos p) {
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

void raas_seq::after_decode(std::vector<llama_pos> placed) {
    std::sort(placed.begin(), placed.end());

    bool decode_step = false;
    for (llama_pos p : placed) {
        const bool pinned = is_pinned(p);
        n_pinned += pinned ? 1 : 0;
        decode_step |= !pinned;
    }
    if (decode_step) {
        step += 1; // before placing: a page gets the step of its first token as timestamp
    }
    if (pol->pages) {
        for (llama_pos p : placed) {
            if (is_pinned(p)) {
                if (!pages.empty()) {
                    pages.back().closed = true; // a pinned range cuts the open page
                }
            } else if (!pages.empty() && p <= pages.back().last) {
                stale = true; // pages stay in position order; reconcile at the next decode
            } else {
                raas_place(*this, p);
            }
        }
    }
    used_known = used();
    if (!pol->pages) {
        return;
    }

    const auto & cells = kv->get_cells(seq);
    if (has_score_override) {
        std::sort(score_override.begin(), score_override.end());
        scores.assign(cells.used_max_p1(), 0.0f);
        for (uint32_t i = 0; i < scores.size(); ++i) {
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
    if (scores.empty()) {
        score_pos.clear();
        return; // no scores this step (quest, streaming): the pages are as placed
    }

    // per page: its cells' scores in the graph's KV view (O(n_kv), not O(n_ctx)), by params.page_score
    const uint32_t n_view = std::min<uint32_t>((uint32_t) scores.size(), cells.size());
    n_visited += n_view;
    score_pos.assign(scores.size(), -1);
    std::vector<int32_t> count(pages.size(), 0);
    std::vector<float>   best (pages.size(), 0.0f);
    std::vector<float>   sum  (pages.size(), 0.0f);
    for (uint32_t i = 0; i < n_view; ++i) {
        if (cells.is_empty(i) || !cells.seq_has(i, seq)) {
            continue;
        }
        const llama_pos p = cells.pos_get(i);
        score_pos[i] = p;
        auto it = std::upper_bound(pages.begin(), pages.end(), p,
                [](llama_pos v, const raas_page & pg) { return v < pg.first; });
        if (it == pages.begin()) {
            continue;
        }
        const size_t j = (it - pages.begin()) - 1;
        if (p > pages[j].last) {
            continue;
        }
        best[j]  = count[j] == 0 ? scores[i] : std::max(best[j], scores[i]);
        sum[j]  += scores[i];
        count[j] += 1;
    }
    for (size_t j = 0; j < pages.size(); ++j) {
        switch (params.page_score) {
            case LLAMA_RAAS_PAGE_MEAN: pages[j].score = count[j] ? sum[j] / count[j] : 0.0f; break;
            case LLAMA_RAAS_PAGE_SUM:  pages[j].score = sum[j];                              break;
            default:                   pages[j].score = best[j];                             break;
        }
    }

    if (decode_step && pol->observe) {
        pol->observe(*this);
    }
}

void raas_seq::get_stats(llama_raas_stats & out) {
    if (stale || used() != used_known) {
        reconcile(); // a clear or the caller's seq_rm since the last decode: count what is cached now
    }
    const auto & cells = kv->get_cells(seq);
    const int32_t n_used = (int32_t) cells.get_used();
    out = {};
    out.budget         = params.budget;
    out.n_cells        = (int32_t) cells.size();
    out.used           = n_used;
    out.pinned         = (int32_t) n_pinned;
    out.decode_cells   = n_used - (int32_t) n_pinned;
    out.pages          = (int32_t) pages.size();
    out.step           = step;
    out.visited        = (int32_t) n_visited;
    out.evictions      = n_evicted_pages;
    out.evicted_cells  = n_evicted_cells;
    out.newest_pos     = newest_pos();
    out.last_evictions = (int32_t) last_evicted.size();
}

// -- the context's policy: a batch split by sequence ---------------------------

void llama_raas::reset() {
    for (auto & s : seqs) {
        s.reset();
    }
}

// the sequence of each token of a batch; -1 when a token is not of exactly one known sequence
static llama_seq_id raas_token_seq(const llama_raas & r, const llama_batch & batch, int32_t i) {
    if (batch.n_seq_id[i] != 1) {
        return -1;
    }
    const llama_seq_id s = batch.seq_id[i][0];
    return r.get(s) ? s : -1;
}

bool llama_raas::before_decode(const llama_batch & batch) {
    if (pol->evicts && kv->get_has_shift()) {
        raas_set_error(std::string("policy ") + pol->name + " cannot follow positions moved by llama_memory_seq_add or "
                "llama_memory_seq_div (its pages and pins hold positions); clear the memory, or use --policy dense");
        return false;
    }
    std::vector<uint32_t>  n   (seqs.size(), 0);
    std::vector<llama_pos> last(seqs.size(), -1);
    for (int32_t i = 0; i < batch.n_tokens; ++i) {
        const llama_seq_id s = raas_token_seq(*this, batch, i);
        if (s < 0) {
            raas_set_error(std::string("policy ") + pol->name + " needs every token of a batch in exactly one sequence "
                    "below n_seq_max (" + std::to_string(seqs.size()) + ")");
            return false;
        }
        n[s]    += 1;
        last[s]  = std::max(last[s], batch.pos[i]);
    }
    for (size_t s = 0; s < seqs.size(); ++s) {
        if (n[s] > 0 && !seqs[s].before_decode(n[s], last[s])) {
            return false;
        }
    }
    return true;
}

void llama_raas::read_scores(ggml_backend_sched * sched, ggml_tensor * t, const llama_ubatch & ubatch) {
    // the ubatch holds n_seqs_unq sequences of n_tps tokens each, in stream order (one stream, all
    // tokens, with a single sequence); t holds one row of n_kv scores per stream
    const uint32_t n_seq = std::max<uint32_t>(ubatch.n_seqs_unq, 1);
    const uint32_t n_tps = ubatch.n_tokens/n_seq;
    std::vector<float> all;
    for (uint32_t k = 0; k < n_seq; ++k) {
        raas_seq * st = get(ubatch.seq_id_unq[k]);
        if (!st || ubatch.pos[(k + 1)*n_tps - 1] != st->batch_last) {
            continue; // only the ubatch holding the sequence's last token has the scores we keep
        }
        if (!t) {
            st->scores.clear();
            continue;
        }
        if (all.empty()) {
            ggml_backend_t backend = ggml_backend_sched_get_tensor_backend(sched, t);
            all.resize(ggml_nelements(t));
            ggml_backend_tensor_get_async(backend, t, all.data(), 0, ggml_nbytes(t));
            ggml_backend_synchronize(backend);
        }
        const int64_t n_kv = t->ne[0];
        const int64_t row  = t->ne[1] == 1 ? 0 : (int64_t) k; // one stream (one sequence): one row
        st->scores.assign(all.begin() + row*n_kv, all.begin() + (row + 1)*n_kv);
    }
}

void llama_raas::after_decode(const llama_batch & batch) {
    std::vector<std::vector<llama_pos>> placed(seqs.size());
    for (int32_t i = 0; i < batch.n_tokens; ++i) {
        const llama_seq_id s = raas_token_seq(*this, batch, i);
        if (s >= 0) {
            placed[s].push_back(batch.pos[i]);
        }
    }
    for (size_t s = 0; s < seqs.size(); ++s) {
        if (!placed[s].empty()) {
            seqs[s].after_decode(std::move(placed[s]));
        }
    }
}
