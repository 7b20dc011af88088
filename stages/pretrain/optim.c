/* optim.c: AdamW, clipping and schedules over the flat parameter buffers (optim.h).
 * Not a generic optimiser library: one algorithm, the one model.md specifies. */
#include "bgfm/optim.h"

#include <math.h>
#include <string.h>

int optim_init(optim *o, const model *md, bgfm_err *e) {
    memset(o, 0, sizeof *o);
    o->n = md->n_params;
    o->m = bgfm_calloc(e, (size_t)o->n, sizeof(float), "AdamW first moments");
    o->v = bgfm_calloc(e, (size_t)o->n, sizeof(float), "AdamW second moments");
    o->decay = bgfm_calloc(e, (size_t)o->n, 1, "weight-decay mask");
    if (!o->m || !o->v || !o->decay) {
        optim_free(o);
        return BGFM_ENOMEM;
    }
    for (int i = 0; i < md->n_tensors; i++) {
        const model_tensor *t = &md->t[i];
        if (t->decay) memset(o->decay + t->off, 1, (size_t)(t->rows * (t->cols ? t->cols : 1)));
    }
    return 0;
}

void optim_free(optim *o) {
    free(o->m);
    free(o->v);
    free(o->decay);
    o->m = o->v = NULL;
    o->decay = NULL;
}

double optim_lr(const optim_cfg *c, int64_t s) {
    if (c->warmup > 0 && s < c->warmup) return c->lr * (double)(s + 1) / (double)c->warmup;
    int64_t span = c->total_steps - c->warmup;
    if (span <= 0) return c->lr;
    double p = (double)(s - c->warmup) / (double)span;
    if (p > 1.0) p = 1.0;
    return c->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
}

double optim_clip(float *g, int64_t n, double clip) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    double nr = sqrt(s);
    if (clip > 0 && nr > clip) {
        float f = (float)(clip / (nr + 1e-6));
        for (int64_t i = 0; i < n; i++) g[i] *= f;
    }
    return nr;
}

void optim_adamw(optim *o, float *w, const float *g, double lr, const optim_cfg *c) {
    o->t++;
    optim_adamw_buf(w, g, o->m, o->v, o->decay, NULL, o->n, o->t, lr, c);
}

void optim_adamw_buf(float *w, const float *g, float *mom, float *var, const uint8_t *decay,
                     const float *scale, int64_t n, int64_t t, double lr, const optim_cfg *c) {
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    float step = (float)(lr / bc1), ibc2 = (float)(1.0 / bc2);
    float wd = (float)(lr * c->weight_decay);
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i], s = scale ? scale[i] : 1.0f;
        float m = mom[i] = b1 * mom[i] + (1.0f - b1) * gi;
        float v = var[i] = b2 * var[i] + (1.0f - b2) * gi * gi;
        if (s == 0.0f) continue; /* frozen: the moments run on, the weight does not move */
        float wi = w[i];
        if (decay && decay[i]) wi -= s * wd * wi;
        w[i] = wi - s * step * m / (sqrtf(v * ibc2) + eps);
    }
}

double optim_mask_ratio(double r0, double r1, int64_t epoch, int64_t epochs) {
    if (epochs <= 1) return r0;
    return r0 + (r1 - r0) * (double)epoch / (double)(epochs - 1);
}
