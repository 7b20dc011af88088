/* kinds.c: the registry of stage kinds (the values `uses:` accepts): the one file of the
 * engine that names every kind. Not a runner (run.c) and not the support stages call
 * (stage.c); stages/<kind>/ implement the kinds. */
#include <string.h>

#include "bgfm/stage.h"

/* One line per kind, in pipeline order. */
static const bgfm_stage_kind *const kinds[] = {
    &bgfm_stage_parcellate,
    &bgfm_stage_connectivity,
    &bgfm_stage_pretrain,
    &bgfm_stage_probe,
    &bgfm_stage_finetune,
    &bgfm_stage_prompt,
    NULL
};

const bgfm_stage_kind *const *stage_kinds(void) { return kinds; }

const bgfm_stage_kind *stage_kind_find(const char *name) {
    for (int i = 0; kinds[i]; i++)
        if (!strcmp(kinds[i]->name, name)) return kinds[i];
    return NULL;
}
