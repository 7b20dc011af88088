/* head.c: the task head (head.h): linear logits or value, softmax cross-entropy or
 * squared error, gradients, AdamW. Small: H x K multiply-adds per graph, in double
 * accumulation. Not the encoder and not the loop. */
#include "bgfm/head.h"

#include <math.h>
#include <string.h>

int head_init(head *h, int task, int K, int64_t H, int B_max, bgfm_err *e) {
    memset(h, 0, sizeof *h);
    h->task = task;
    h->K = task == HEAD_REGRESS ? 1 : K;
    h->H = H;
    h->B_max = B_max;
    h->n = (int64_t)h->K * H + h->K;
    size_t n = (size_t)h->n, bk = (size_t)B_max * (size_t)h->K;
    h->w = bgfm_calloc(e, n, sizeof(float), "task head");
    h->g = bgfm_calloc(e, n, sizeof(float), "task head");
    h->m = bgfm_calloc(e, n, sizeof(float), "task head");
    h->v = bgfm_calloc(e, n, sizeof(float), "task head");
    h->decay = bgfm_calloc(e, n, 1, "task head");
    h->out = bgfm_calloc(e, bk, sizeof(float), "task head");
    h->dout = bgfm_calloc(e, bk, sizeof(float), "task head");
    h->dE = bgfm_calloc(e, (size_t)B_max * (size_t)H, sizeof(float), "task head");
    if (!h->w || !h->g || !h->m || !h->v || !h->decay || !h->out || !h->dout || !h->dE) {
        head_free(h);
        return BGFM_ENOMEM;
    }
    memset(h->decay, 1, (size_t)h->K * (size_t)H);
    return 0;
}

void head_free(head *h) {
    free(h->w);
    free(h->g);
    free(h->m);
    free(h->v);
    free(h->decay);
    free(h->out);
    free(h->dout);
    free(h->dE);
    memset(h, 0, sizeof *h);
}

void head_reset(head *h) {
    size_t n = (size_t)h->n * sizeof(float);
    memset(h->w, 0, n);
    memset(h->g, 0, n);
    memset(h->m, 0, n);
    memset(h->v, 0, n);
    h->t = 0;
}

static void forward(head *h, const float *E, int B) {
    int64_t H = h->H, K = h->K;
    const float *b = h->w + K * H;
    for (int i = 0; i < B; i++)
        for (int64_t k = 0; k < K; k++) {
            double s = (double)b[k];
            const float *wk = h->w + k * H, *x = E + (int64_t)i * H;
            for (int64_t j = 0; j < H; j++) s += (double)wk[j] * (double)x[j];
            h->out[(int64_t)i * K + k] = (float)s;
        }
}

/* softmax of row o (K) into p, and log-sum-exp */
static double softmax_row(const float *o, int K, double *p) {
    double mx = (double)o[0], z = 0;
    for (int k = 1; k < K; k++) mx = (double)o[k] > mx ? (double)o[k] : mx;
    for (int k = 0; k < K; k++) z += p[k] = exp((double)o[k] - mx);
    for (int k = 0; k < K; k++) p[k] /= z;
    return mx + log(z);
}

double head_loss(head *h, const float *E, int B, const int *cls, const float *y, double scale,
                 double *per) {
    int64_t H = h->H, K = h->K;
    forward(h, E, B);
    double sum = 0, p[256];
    BGFM_ASSERT(K <= 256);
    for (int i = 0; i < B; i++) {
        const float *o = h->out + (int64_t)i * K;
        float *d = h->dout + (int64_t)i * K;
        double l;
        if (h->task == HEAD_CLASSIFY) {
            double lse = softmax_row(o, (int)K, p);
            l = lse - (double)o[cls[i]];
            for (int64_t k = 0; k < K; k++) d[k] = (float)(scale * (p[k] - (k == cls[i])));
        } else {
            double r = (double)o[0] - (double)y[i];
            l = r * r;
            d[0] = (float)(scale * 2.0 * r);
        }
        if (per) per[i] = l;
        sum += l;
    }
    if (scale <= 0) return sum;
    float *gb = h->g + K * H;
    for (int i = 0; i < B; i++) {
        const float *d = h->dout + (int64_t)i * K, *x = E + (int64_t)i * H;
        float *dx = h->dE + (int64_t)i * H;
        memset(dx, 0, (size_t)H * sizeof *dx);
        for (int64_t k = 0; k < K; k++) {
            float *gk = h->g + k * H;
            const float *wk = h->w + k * H;
            for (int64_t j = 0; j < H; j++) {
                gk[j] += d[k] * x[j];
                dx[j] += d[k] * wk[j];
            }
            gb[k] += d[k];
        }
    }
    return sum;
}

void head_predict(head *h, const float *E, int B, double *out) {
    int64_t K = h->K;
    forward(h, E, B);
    for (int i = 0; i < B; i++) {
        if (h->task == HEAD_CLASSIFY)
            softmax_row(h->out + (int64_t)i * K, (int)K, out + (int64_t)i * K);
        else
            out[i] = h->out[i];
    }
}

void head_adamw(head *h, double lr, const optim_cfg *c) {
    h->t++;
    optim_adamw_buf(h->w, h->g, h->m, h->v, h->decay, NULL, h->n, h->t, lr, c);
}
