// raas-local: the RaaS rule (Hu et al., arXiv 2502.11147), per page of cells.
//
// After step t, each decode page P (the newest, partial one included) has
// score(P) = max of its cells' scores (the last token's attention, summed over
// heads and layers). Pages ordered by (score desc, first position desc): the
// first ceil(r * n_pages) get ts(P) = t. A page gets ts = t when its first
// token is placed. To make room, the closed page with the smallest
// (ts, first position) that does not hold the newest position is freed.
// That is the paper setting; the params vary its free choices: heads summed or
// maxed (head_agg), the first layers unscored (skip_layers), page score as the
// max, mean or sum of its cells (page_score, in raas-cache.cpp), and the
// protect_pages newest pages beyond the open one never freed.
// tests/reference/raas_policy.py is the plain-Python model of this file.

#include "raas.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

int32_t raas_n_refresh(float ratio, size_t n_pages) {
    // the epsilon keeps e.g. 0.3f * 10 from rounding up to 4
    return (int32_t) std::ceil((double) ratio * (double) n_pages - 1e-6);
}

static void raas_observe(raas_seq & st) {
    auto & pages = st.pages;
    std::vector<size_t> order(pages.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (pages[a].score != pages[b].score) {
            return pages[a].score > pages[b].score;
        }
        return pages[a].first > pages[b].first;
    });
    const int32_t k = std::min<int32_t>(raas_n_refresh(st.params.refresh_ratio, pages.size()), (int32_t) pages.size());
    for (int32_t i = 0; i < k; ++i) {
        pages[order[i]].ts = st.step;
    }
}

static std::string raas_check(const llama_raas_params & p) {
    if (p.head_agg != LLAMA_RAAS_HEAD_SUM && p.head_agg != LLAMA_RAAS_HEAD_MAX) {
        return "head aggregation must be sum (0) or max (1), got " + std::to_string(p.head_agg);
    }
    if (p.page_score < LLAMA_RAAS_PAGE_MAX || p.page_score > LLAMA_RAAS_PAGE_SUM) {
        return "page score must be max (0), mean (1) or sum (2), got " + std::to_string(p.page_score);
    }
    if (p.skip_layers < 0 || p.protect_pages < 0) {
        return "skipped layers and protected pages must be >= 0";
    }
    if (p.budget < (2 + p.protect_pages)*p.page_size) {
        return "budget " + std::to_string(p.budget) + " is below " + std::to_string(2 + p.protect_pages) +
               " pages: two to decode in and " + std::to_string(p.protect_pages) + " protected";
    }
    return "";
}

static int raas_victim(const raas_seq & st) {
    const llama_pos newest = st.newest_pos();
    // the newest protect_pages pages beyond the one being filled stay (pages are in position order)
    const size_t n_open = st.pages.empty() ? 0 : (raas_page_evictable(st.pages.back(), newest) ? 0 : 1);
    const size_t n_kept = std::min(st.pages.size(), n_open + (size_t) st.params.protect_pages);
    int best = -1;
    for (size_t i = 0; i + n_kept < st.pages.size(); ++i) {
        const raas_page & p = st.pages[i];
        if (!raas_page_evictable(p, newest)) {
            continue;
        }
        // pages are in position order, so the first of equal ts has the smaller first position
        if (best < 0 || p.ts < st.pages[best].ts) {
            best = (int) i;
        }
    }
    return best;
}

const raas_policy raas_policy_raas = {
    /*.kind         =*/ LLAMA_RAAS_KIND_RAAS,
    /*.name         =*/ "raas",
    /*.needs_scores =*/ true,
    /*.evicts       =*/ true,
    /*.pages        =*/ true,
    /*.page_size    =*/ 0,
    /*.graph_nodes  =*/ 0,
    /*.check        =*/ raas_check,
    /*.on_reset     =*/ nullptr,
    /*.observe      =*/ raas_observe,
    /*.victim       =*/ raas_victim,
    /*.build_attn   =*/ nullptr,
};
