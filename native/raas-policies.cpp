// raas-local: the policy kinds this build knows. A new kind is one
// raas-policy-<kind>.cpp defining its row, plus one line here.

#include "raas.h"

static const raas_policy * const RAAS_POLICIES[] = {
    &raas_policy_dense,
    &raas_policy_raas,
    &raas_policy_streaming,
    &raas_policy_h2o,
    &raas_policy_quest,
};

const raas_policy * raas_policy_find(int32_t kind) {
    for (const raas_policy * p : RAAS_POLICIES) {
        if (p->kind == kind) {
            return p;
        }
    }
    return nullptr;
}
