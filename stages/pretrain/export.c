/* export.c: the model as safetensors (export.h, docs/export.md): the bgfm <-> PyTorch
 * name map, the writer behind `bgfm export`, and the strict reader behind `init:
 * FILE.safetensors`. Not the checkpoint format (ckpt.c) and not the training loop. */
#include "bgfm/export.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/ckpt.h"
#include "bgfm/cli.h"
#include "bgfm/h5io.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/pop.h"

#define NAME_MAX_COMPS 8

/* ---- names ------------------------------------------------------------------------
 * bgfm name (model.md section 6) -> PyTorch state_dict name of python/bgfm_torch's
 * module: nn.Linear / nn.LayerNorm / nn.Embedding hold `weight` and `bias`, so every
 * W/b, gamma/beta becomes one of those, under the layer's own name. '*' is an atlas name
 * (letters, digits, '_', '-'), '#' a block index. Block tensors follow `enc/#/` and
 * `dec/#/` (the table `block`). docs/export.md ("The module and its names") has the same
 * table for people. */
typedef struct name_pair {
    const char *b, *t;
} name_pair;

static const name_pair top[] = {
    {"in/W", "input.weight"},           {"in/b", "input.bias"},
    {"embed/token", "embed.token.weight"}, {"embed/node/*", "embed.node.*.weight"},
    {"readout/Wc", "readout.proj.weight"}, {"readout/W/*", "readout.atlas.*.weight"},
    {"readout/b", "readout.bias"},      {"dec/re/W", "dec.re.weight"},
    {"dec/re/b", "dec.re.bias"},        {"dec/mask_token", "dec.mask_token"},
    {"dec/out/W", "dec.out.weight"},    {"dec/out/b", "dec.out.bias"},
    {"proj/W1", "proj.fc1.weight"},     {"proj/b1", "proj.fc1.bias"},
    {"proj/W2", "proj.fc2.weight"},     {"proj/b2", "proj.fc2.bias"},
    {"norm/*/mean", "norm.*.mean"},     {"norm/*/std", "norm.*.std"},
    {"pop/*/W", "pop.*.weight"},        {"pop/*/b", "pop.*.bias"},
    {"pcs/*/W", "pcs.*.weight"},        {"pcs/*/b", "pcs.*.bias"},
};

static const name_pair block[] = {
    {"gcn/W", "gcn.weight"},         {"gcn/b", "gcn.bias"},
    {"ln_g/gamma", "ln_g.weight"},   {"ln_g/beta", "ln_g.bias"},
    {"attn/Wq", "attn.q.weight"},    {"attn/bq", "attn.q.bias"},
    {"attn/Wk", "attn.k.weight"},    {"attn/bk", "attn.k.bias"},
    {"attn/Wv", "attn.v.weight"},    {"attn/bv", "attn.v.bias"},
    {"attn/Wo", "attn.o.weight"},    {"attn/bo", "attn.o.bias"},
    {"ln_1/gamma", "ln_1.weight"},   {"ln_1/beta", "ln_1.bias"},
    {"ffn/W1", "ffn.fc1.weight"},    {"ffn/b1", "ffn.fc1.bias"},
    {"ffn/W2", "ffn.fc2.weight"},    {"ffn/b2", "ffn.fc2.bias"},
    {"ln_2/gamma", "ln_2.weight"},   {"ln_2/beta", "ln_2.bias"},
};

static int atlas_name_ok(const char *s, size_t len) {
    if (len == 0 || len >= sizeof(((model_cfg *)0)->atlas[0])) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int index_ok(const char *s, size_t len) {
    if (len == 0 || len > 3 || (len > 1 && s[0] == '0')) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* Components of s separated by sep (pointers into s and their lengths); -1 when there
 * are too many or one is empty. */
static int split(const char *s, char sep, const char **c, size_t *len) {
    int n = 0;
    for (const char *p = s;; p++) {
        const char *q = strchr(p, sep);
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == 0 || n == NAME_MAX_COMPS) return -1;
        c[n] = p;
        len[n++] = l;
        if (!q) return n;
        p = q;
    }
}

/* Match the components of a name against pattern `pat` (separator psep); the wildcard
 * captures go to cap/caplen. Returns the number of captures, or -1. */
static int match(const char **c, const size_t *len, int n, const char *pat, char psep,
                 const char **cap, size_t *caplen) {
    const char *pc[NAME_MAX_COMPS];
    size_t pl[NAME_MAX_COMPS];
    int pn = split(pat, psep, pc, pl), k = 0;
    if (pn != n) return -1;
    for (int i = 0; i < n; i++) {
        int star = pl[i] == 1 && pc[i][0] == '*', hash = pl[i] == 1 && pc[i][0] == '#';
        if (star || hash) {
            if (star ? !atlas_name_ok(c[i], len[i]) : !index_ok(c[i], len[i])) return -1;
            cap[k] = c[i];
            caplen[k++] = len[i];
        } else if (pl[i] != len[i] || strncmp(pc[i], c[i], len[i])) {
            return -1;
        }
    }
    return k;
}

/* Write pattern `pat` with its wildcards replaced by the captures, separator osep. */
static int emit(const char *pat, char psep, char osep, const char **cap, const size_t *caplen,
                char *out, size_t n) {
    size_t o = 0;
    int k = 0;
    for (const char *p = pat; *p; p++) {
        const char *s = p;
        size_t l = 1;
        if (*p == '*' || *p == '#') {
            s = cap[k];
            l = caplen[k++];
        } else if (*p == psep) {
            s = &osep;
        }
        if (o + l >= n) return -1;
        memcpy(out + o, s, l);
        o += l;
    }
    out[o] = '\0';
    return 0;
}

/* dir 0: bgfm -> torch, 1: torch -> bgfm. */
static int map_name(const char *src, int dir, char *out, size_t n) {
    char isep = dir ? '.' : '/', osep = dir ? '/' : '.';
    const char *c[NAME_MAX_COMPS], *cap[NAME_MAX_COMPS];
    size_t len[NAME_MAX_COMPS], caplen[NAME_MAX_COMPS];
    int nc = split(src, isep, c, len);
    if (nc < 0) return -1;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        const char *from = dir ? top[i].t : top[i].b, *to = dir ? top[i].b : top[i].t;
        if (match(c, len, nc, from, isep, cap, caplen) >= 0)
            return emit(to, isep, osep, cap, caplen, out, n);
    }
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) {
            char from[64], to[64];
            const char *pre = p ? "dec" : "enc";
            snprintf(from, sizeof from, "%s%c#%c%s", pre, isep, isep, dir ? block[i].t : block[i].b);
            snprintf(to, sizeof to, "%s%c#%c%s", pre, isep, isep, dir ? block[i].b : block[i].t);
            if (match(c, len, nc, from, isep, cap, caplen) >= 0)
                return emit(to, isep, osep, cap, caplen, out, n);
        }
    return -1;
}

int export_torch_name(const char *bgfm, char *out, size_t n) { return map_name(bgfm, 0, out, n); }
int export_bgfm_name(const char *torch, char *out, size_t n) { return map_name(torch, 1, out, n); }

int export_is_encoder(const char *bgfm) {
    return strncmp(bgfm, "dec/", 4) != 0 && strncmp(bgfm, "proj/", 5) != 0;
}

int export_is_safetensors(const char *path) {
    size_t n = strlen(path), s = strlen(".safetensors");
    return n > s && !strcmp(path + n - s, ".safetensors");
}

/* ---- the header ------------------------------------------------------------------
 * One canonical form, which python/bgfm_torch writes too (so an unchanged model gives
 * the same bytes): {"__metadata__":{keys sorted},"name":{"dtype":"F32","shape":[..],
 * "data_offsets":[b,e]},...} with the tensors sorted by name, no spaces, then spaces up
 * to a multiple of 8 bytes. Data in the same order. */
typedef struct sel_tensor {
    const model_tensor *t;
    char name[MODEL_NAME_MAX + 16];
} sel_tensor;

typedef struct meta_kv {
    const char *k;
    char *v; /* owned */
} meta_kv;

static int cmp_sel(const void *a, const void *b) {
    return strcmp(((const sel_tensor *)a)->name, ((const sel_tensor *)b)->name);
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp(((const meta_kv *)a)->k, ((const meta_kv *)b)->k);
}

/* printf into a fresh string stored as meta value i (n counts them). */
__attribute__((format(printf, 5, 6))) static int kv_add(meta_kv *kv, int *n, bgfm_err *e,
                                                        const char *k, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    int r = vasprintf(&v, fmt, ap);
    va_end(ap);
    if (r < 0) return bgfm_fail(e, BGFM_ENOMEM, "out of memory building the export metadata");
    kv[*n].k = k;
    kv[(*n)++].v = v;
    return 0;
}

/* The metadata of model.md's architecture and the corpus (docs/formats.md). */
static int meta_build(const model *m, const export_corpus *cp, int full, meta_kv *kv, int *n,
                      bgfm_err *e) {
    const model_cfg *c = &m->cfg;
    char names[MODEL_MAX_ATLASES * 65] = "", nodes[MODEL_MAX_ATLASES * 12] = "";
    for (int a = 0; a < c->n_atlases; a++) {
        size_t l = strlen(names), q = strlen(nodes);
        snprintf(names + l, sizeof names - l, "%s%s", a ? "," : "", c->atlas[a]);
        snprintf(nodes + q, sizeof nodes - q, "%s%d", a ? "," : "", c->atlas_nodes[a]);
    }
    *n = 0;
    int rc = kv_add(kv, n, e, "format", "bgfm-safetensors");
    if (!rc) rc = kv_add(kv, n, e, "format_version", "%d", EXPORT_FORMAT_VERSION);
    if (!rc) rc = kv_add(kv, n, e, "contents", "%s", full ? "full" : "encoder");
    if (!rc) rc = kv_add(kv, n, e, "atlases", "%s", names);
    if (!rc) rc = kv_add(kv, n, e, "atlas_nodes", "%s", nodes);
    const char *ik[] = {"H", "nh", "F", "k", "L", "Ld", "P", "N_max", "D_in", "readout_dim"};
    int iv[] = {c->H, c->nh, c->F, c->k, c->L, c->Ld, c->P, c->N_max, m->D_in,
                c->readout == MODEL_READOUT_REGION ? c->rdim : 0};
    for (int i = 0; i < 10 && !rc; i++) rc = kv_add(kv, n, e, ik[i], "%d", iv[i]);
    if (!rc) rc = kv_add(kv, n, e, "readout", "%s", model_readout_name(c->readout));
    if (!rc) rc = kv_add(kv, n, e, "input_norm", "%s", c->norm ? "population" : "none");
    if (!rc) rc = kv_add(kv, n, e, "pop_rank", "%d", c->pop_rank);
    if (!rc && c->pop_rank && c->pop_site_fit) /* how the head was fitted (final.h5's pop_site) */
        rc = kv_add(kv, n, e, "pop_site", "%s", pop_site_name(c->pop_site_fit - 1));
    if (!rc) rc = kv_add(kv, n, e, "embedding", "%s", model_embed_name(c->embed));
    if (!rc && c->pcs) rc = kv_add(kv, n, e, "pcs", "%d", c->pcs);
    if (!rc) rc = kv_add(kv, n, e, "layer_norm_eps", "1e-05");
    if (!rc) rc = kv_add(kv, n, e, "bgfm_version", "%s", BGFM_VERSION);
    if (!rc) rc = kv_add(kv, n, e, "bgfm_rev", "%s", BGFM_GITREV);
    if (!rc && cp->config) rc = kv_add(kv, n, e, "config", "%s", cp->config);
    if (!rc && cp->protocol) rc = kv_add(kv, n, e, "protocol", "%s", cp->protocol);
    if (!rc && cp->n_graphs >= 0)
        rc = kv_add(kv, n, e, "pretrain_graphs", "%lld", (long long)cp->n_graphs);
    if (!rc) rc = kv_add(kv, n, e, "step", "%lld", (long long)cp->step);
    if (!rc) rc = kv_add(kv, n, e, "epoch", "%lld", (long long)cp->epoch);
    if (!rc) rc = kv_add(kv, n, e, "seed", "%llu", (unsigned long long)cp->seed);
    if (!rc && cp->source) rc = kv_add(kv, n, e, "source", "%s", cp->source);
    if (!rc && cp->sha256_model) rc = kv_add(kv, n, e, "source_sha256_model", "%s", cp->sha256_model);
    if (!rc) qsort(kv, (size_t)*n, sizeof *kv, cmp_kv);
    return rc;
}

/* The padded header text of the selected tensors (sorted here) into *hdr, *hlen. */
static int header_build(sel_tensor *s, int ns, const meta_kv *kv, int nkv, char **hdr,
                        size_t *hlen, bgfm_err *e) {
    qsort(s, (size_t)ns, sizeof *s, cmp_sel);
    size_t len = 0;
    FILE *f = open_memstream(hdr, &len);
    if (!f) return bgfm_fail(e, BGFM_ENOMEM, "out of memory building the safetensors header");
    fputs("{\"__metadata__\":{", f);
    for (int i = 0; i < nkv; i++) {
        if (i) fputc(',', f);
        json_write_str(f, kv[i].k);
        fputc(':', f);
        json_write_str(f, kv[i].v);
    }
    fputc('}', f);
    int64_t off = 0;
    for (int i = 0; i < ns; i++) {
        const model_tensor *t = s[i].t;
        int64_t bytes = t->rows * (t->cols ? t->cols : 1) * (int64_t)sizeof(float);
        fputc(',', f);
        json_write_str(f, s[i].name);
        if (t->cols)
            fprintf(f, ":{\"dtype\":\"F32\",\"shape\":[%lld,%lld]", (long long)t->rows,
                    (long long)t->cols);
        else
            fprintf(f, ":{\"dtype\":\"F32\",\"shape\":[%lld]", (long long)t->rows);
        fprintf(f, ",\"data_offsets\":[%lld,%lld]}", (long long)off, (long long)(off + bytes));
        off += bytes;
    }
    fputc('}', f);
    while (ftell(f) % 8) fputc(' ', f);
    if (fclose(f) != 0 || !*hdr)
        return bgfm_fail(e, BGFM_ENOMEM, "out of memory building the safetensors header");
    *hlen = len;
    return 0;
}

/* ---- writing ----------------------------------------------------------------------
 * The file is created as path.tmp-<pid> with its header; the tensors' data go to their
 * offsets in any order (out_piece: from a model's buffer, or piece by piece as a
 * checkpoint is streamed); out_finish fsyncs, renames and fsyncs the folder, or removes
 * the temporary file: the output is complete or absent (with no_sync, `bgfm export
 * --no-sync`, the rename alone: complete or absent unless the machine itself crashes). */
typedef struct st_out {
    const char *path;
    char tmp[4200];
    const model *m; /* whose tensor table `at` follows */
    int fd;
    int no_sync; /* rename without the fsyncs of the file and its folder */
    int64_t *at; /* per model tensor: byte offset of its data in the file; -1: not written */
} st_out;

static int write_all(int fd, const void *buf, size_t n, int64_t off, const char *path,
                     bgfm_err *e) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return bgfm_fail(e, BGFM_EIO, "writing %s failed (disk full?): %s", path,
                             w < 0 ? strerror(errno) : "no progress");
        p += w;
        off += w;
        n -= (size_t)w;
    }
    return 0;
}

/* n floats at byte offset off, little-endian (the host order on every machine bgfm
 * builds for; a big-endian host swaps through a small buffer). */
static int write_floats(int fd, const float *x, int64_t n, int64_t off, const char *path,
                        bgfm_err *e) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return write_all(fd, x, (size_t)n * sizeof *x, off, path, e);
#else
    uint32_t buf[4096];
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t k = n - i < 4096 ? n - i : 4096;
        for (int64_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, x + i + j, 4);
            buf[j] = __builtin_bswap32(u);
        }
        int rc = write_all(fd, buf, (size_t)k * 4, off + 4 * i, path, e);
        if (rc) return rc;
    }
    return 0;
#endif
}

/* ckpt_piece_fn: elements [first, first + n) of tensor t into the file. */
static int out_piece(void *arg, const model_tensor *t, int64_t first, int64_t n, const float *x,
                     bgfm_err *e) {
    const st_out *o = arg;
    int64_t at = o->at[t - o->m->t];
    if (at < 0) return 0; /* not exported (the decoder and head of an encoder file) */
    return write_floats(o->fd, x, n, at + first * (int64_t)sizeof *x, o->tmp, e);
}

static int sync_dir_of(const char *path, bgfm_err *e) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    int fd = open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY);
    if (fd < 0) return bgfm_fail(e, BGFM_EIO, "cannot open the folder of %s to sync it: %s", path,
                                 strerror(errno));
    int rc = fsync(fd) != 0 && errno != EINVAL
                 ? bgfm_fail(e, BGFM_EIO, "fsync of the folder of %s failed: %s", path, strerror(errno))
                 : 0;
    close(fd);
    return rc;
}

/* Create path.tmp-<pid> with the header of m's selected tensors (sorted by name) and
 * note where each tensor's data goes. Nothing is left behind on failure. */
static int out_begin(st_out *o, const char *path, const model *m, const export_corpus *cp,
                     int full, bgfm_err *e) {
    memset(o, 0, sizeof *o);
    o->path = path;
    o->m = m;
    o->fd = -1;
    if (snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof o->tmp)
        return bgfm_fail(e, BGFM_EUSAGE, "export: output path too long: %s", path);
    sel_tensor *s = bgfm_calloc(e, (size_t)m->n_tensors, sizeof *s, "export tensor list");
    o->at = bgfm_malloc(e, (size_t)m->n_tensors * sizeof *o->at, "export offsets");
    meta_kv kv[40];
    int nkv = 0, ns = 0, rc = s && o->at ? 0 : BGFM_ENOMEM;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        o->at[i] = -1;
        if (!full && !export_is_encoder(m->t[i].name)) continue;
        s[ns].t = &m->t[i];
        if (export_torch_name(m->t[i].name, s[ns].name, sizeof s[ns].name))
            rc = bgfm_fail(e, BGFM_EINTERNAL, "export: tensor %s has no PyTorch name; add it to "
                           "the name table of stages/pretrain/export.c", m->t[i].name);
        ns++;
    }
    if (!rc) rc = meta_build(m, cp, full, kv, &nkv, e);
    char *hdr = NULL;
    size_t hlen = 0;
    if (!rc) rc = header_build(s, ns, kv, nkv, &hdr, &hlen, e); /* sorts s */
    int64_t data = 8 + (int64_t)hlen;
    for (int i = 0; i < ns && !rc; i++) {
        const model_tensor *t = s[i].t;
        o->at[t - m->t] = data;
        data += t->rows * (t->cols ? t->cols : 1) * (int64_t)sizeof(float);
    }
    if (!rc && (o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        rc = bgfm_fail(e, BGFM_EIO, "export: cannot create %s: %s", o->tmp, strerror(errno));
    /* The whole file's blocks at once: a full disk is known before any write, and the
     * writes skip the per-page delayed allocation (~17 % of their time on ext4). A file
     * system without fallocate is written as before. */
    if (!rc && fallocate(o->fd, 0, 0, (off_t)data) != 0 && errno != EOPNOTSUPP && errno != ENOSYS)
        rc = bgfm_fail(e, BGFM_EIO, "export: cannot reserve %lld bytes for %s (disk full?): %s",
                       (long long)data, o->tmp, strerror(errno));
    unsigned char le[8];
    for (int b = 0; b < 8; b++) le[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
    if (!rc) rc = write_all(o->fd, le, 8, 0, o->tmp, e);
    if (!rc) rc = write_all(o->fd, hdr, hlen, 8, o->tmp, e);
    for (int i = 0; i < nkv; i++) free(kv[i].v);
    free(hdr);
    free(s);
    if (rc && o->fd >= 0) {
        close(o->fd);
        unlink(o->tmp);
        o->fd = -1;
    }
    if (rc) {
        free(o->at);
        o->at = NULL;
    }
    return rc;
}

/* After out_begin succeeded: with rc == 0 make the file durable under its name, else
 * (or when that fails) remove the temporary file. Returns the final status. */
static int out_finish(st_out *o, int rc, bgfm_err *e) {
    if (!rc && !o->no_sync && fsync(o->fd) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "fsync of %s failed (disk full?): %s", o->tmp, strerror(errno));
    if (close(o->fd) != 0 && !rc)
        rc = bgfm_fail(e, BGFM_EIO, "closing %s failed (disk full?): %s", o->tmp, strerror(errno));
    o->fd = -1;
    if (!rc && rename(o->tmp, o->path) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "export: cannot rename %s to %s: %s", o->tmp, o->path,
                       strerror(errno));
    if (rc) unlink(o->tmp);
    if (!rc && !o->no_sync) rc = sync_dir_of(o->path, e);
    free(o->at);
    o->at = NULL;
    return rc;
}

int export_write(const char *path, const model *m, const export_corpus *cp, int full,
                 bgfm_err *e) {
    st_out o;
    int rc = out_begin(&o, path, m, cp, full, e);
    if (rc) return rc;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const model_tensor *t = &m->t[i];
        rc = out_piece(&o, t, 0, t->rows * (t->cols ? t->cols : 1), m->w + t->off, e);
    }
    return out_finish(&o, rc, e);
}

/* ---- reading ---------------------------------------------------------------------- */
typedef struct file_tensor {
    const char *name; /* into the parsed header */
    int64_t shape[2], rank, begin, end;
} file_tensor;

typedef struct st_file {
    const char *path;
    int fd;
    int64_t size, hlen, data_len; /* file bytes, header bytes, bytes after the header */
    json_node root;
    const json_node *meta;
    file_tensor *t;
    int nt;
} st_file;

/* A JSON number that is an integer in [0, hi]; -1 otherwise. */
static int64_t json_int(const json_node *v, int64_t hi) {
    if (!v || v->k != JSON_NUM || !(v->num >= 0) || v->num > (double)hi || v->num != floor(v->num))
        return -1;
    return (int64_t)v->num;
}

static int read_at(int fd, void *buf, size_t n, int64_t off, const char *path, bgfm_err *e) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return bgfm_fail(e, BGFM_EIO, "reading %s failed: %s", path, strerror(errno));
        if (r == 0)
            return bgfm_fail(e, BGFM_EDATA, "%s: the file ends early (at byte %lld); it is "
                             "truncated", path, (long long)off);
        p += r;
        off += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The 8-byte length and the JSON header: parsed into f->root. */
static int header_read(st_file *f, bgfm_err *e) {
    struct stat sb;
    if (fstat(f->fd, &sb) != 0)
        return bgfm_fail(e, BGFM_EIO, "cannot stat %s: %s", f->path, strerror(errno));
    f->size = (int64_t)sb.st_size;
    if (f->size < 8)
        return bgfm_fail(e, BGFM_EDATA, "%s: %lld bytes, too short for a safetensors file (an "
                         "8-byte header length comes first); the file is truncated", f->path,
                         (long long)f->size);
    unsigned char le[8];
    int rc = read_at(f->fd, le, 8, 0, f->path, e);
    if (rc) return rc;
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--) n = (n << 8) | le[b];
    if (n > (uint64_t)(f->size - 8))
        return bgfm_fail(e, BGFM_EDATA, "%s: header length %llu is larger than the file (%lld "
                         "bytes): truncated, or not a safetensors file", f->path,
                         (unsigned long long)n, (long long)f->size);
    if (n < 2 || n > EXPORT_MAX_HEADER)
        return bgfm_fail(e, BGFM_EDATA, "%s: header length %llu (need 2 .. %u bytes); not a "
                         "safetensors file", f->path, (unsigned long long)n, EXPORT_MAX_HEADER);
    f->hlen = (int64_t)n;
    f->data_len = f->size - 8 - f->hlen;
    char *h = bgfm_malloc(e, (size_t)n + 1, "safetensors header");
    if (!h) return BGFM_ENOMEM;
    rc = read_at(f->fd, h, (size_t)n, 8, f->path, e);
    h[n] = '\0';
    if (!rc && strlen(h) != n)
        rc = bgfm_fail(e, BGFM_EDATA, "%s: the header holds a NUL byte; not a safetensors file",
                       f->path);
    if (!rc && (json_parse(h, (size_t)n, &f->root) || f->root.k != JSON_OBJ))
        rc = bgfm_fail(e, BGFM_EDATA, "%s: the header is not a JSON object (bad header, or not "
                       "a safetensors file)", f->path);
    free(h);
    return rc;
}

/* One tensor entry of the header: dtype, shape, data_offsets. */
static int entry_parse(st_file *f, const char *name, const json_node *v, file_tensor *t,
                       bgfm_err *e) {
    const json_node *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"),
                    *of = json_get(v, "data_offsets");
    t->name = name;
    if (!dt || !sh || !of || dt->k != JSON_STR || sh->k != JSON_ARR || of->k != JSON_ARR)
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s: the header entry needs dtype (string), "
                         "shape and data_offsets (arrays)", f->path, name);
    if (strcmp(dt->str, "F32"))
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s has dtype %s; bgfm reads F32 only (save "
                         "float32 tensors: .float())", f->path, name, dt->str);
    if (sh->n < 1 || sh->n > 2)
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s has %d dimensions; every bgfm tensor "
                         "has 1 or 2", f->path, name, sh->n);
    int64_t numel = 1;
    t->rank = sh->n;
    for (int i = 0; i < sh->n; i++) {
        t->shape[i] = json_int(&sh->kid[i], INT64_C(1) << 40);
        if (t->shape[i] < 0)
            return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s: shape entries must be integers "
                             ">= 0", f->path, name);
        numel *= t->shape[i];
        if (numel > (INT64_C(1) << 50))
            return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s: shape too large", f->path, name);
    }
    if (of->n != 2 || (t->begin = json_int(&of->kid[0], INT64_C(1) << 53)) < 0 ||
        (t->end = json_int(&of->kid[1], INT64_C(1) << 53)) < t->begin)
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s: data_offsets must be [begin, end] "
                         "integers with 0 <= begin <= end", f->path, name);
    if (t->end - t->begin != numel * 4)
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s: data_offsets [%lld, %lld] hold %lld "
                         "bytes, its shape needs %lld", f->path, name, (long long)t->begin,
                         (long long)t->end, (long long)(t->end - t->begin), (long long)numel * 4);
    if (t->end > f->data_len)
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s: data_offsets end at %lld, past the end "
                         "of the data (%lld bytes after the header): the file is truncated",
                         f->path, name, (long long)t->end, (long long)f->data_len);
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const file_tensor *x = *(const file_tensor *const *)a, *y = *(const file_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The data of the tensors covers [0, data_len) exactly: no gap, no overlap. */
static int coverage_check(st_file *f, bgfm_err *e) {
    const file_tensor **o = bgfm_malloc(e, (size_t)(f->nt ? f->nt : 1) * sizeof *o, "safetensors");
    if (!o) return BGFM_ENOMEM;
    for (int i = 0; i < f->nt; i++) o[i] = &f->t[i];
    qsort(o, (size_t)f->nt, sizeof *o, cmp_begin);
    int64_t at = 0;
    int rc = 0;
    for (int i = 0; i < f->nt && !rc; i++) {
        if (o[i]->begin < at)
            rc = bgfm_fail(e, BGFM_EDATA, "%s: tensors %s and %s overlap (data_offsets [%lld, "
                           "%lld] and [%lld, %lld])", f->path, o[i - 1]->name, o[i]->name,
                           (long long)o[i - 1]->begin, (long long)o[i - 1]->end,
                           (long long)o[i]->begin, (long long)o[i]->end);
        else if (o[i]->begin > at)
            rc = bgfm_fail(e, BGFM_EDATA, "%s: %lld bytes before tensor %s belong to no tensor "
                           "(a gap in the data)", f->path, (long long)(o[i]->begin - at),
                           o[i]->name);
        at = o[i]->end;
    }
    if (!rc && at != f->data_len)
        rc = bgfm_fail(e, BGFM_EDATA, "%s: the tensors' data ends at byte %lld after the header "
                       "but %lld bytes follow it (trailing bytes)", f->path, (long long)at,
                       (long long)f->data_len);
    free(o);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* No name twice in the header (sorted, so a huge hostile header stays n log n). */
static int names_unique(const st_file *f, bgfm_err *e) {
    const json_node *r = &f->root;
    const char **k = bgfm_malloc(e, (size_t)(r->n ? r->n : 1) * sizeof *k, "safetensors names");
    if (!k) return BGFM_ENOMEM;
    if (r->n) memcpy(k, r->keys, (size_t)r->n * sizeof *k);
    qsort(k, (size_t)r->n, sizeof *k, cmp_str);
    int rc = 0;
    for (int i = 1; i < r->n && !rc; i++)
        if (!strcmp(k[i], k[i - 1]))
            rc = bgfm_fail(e, BGFM_EDATA, "%s: %s appears twice in the header", f->path, k[i]);
    free(k);
    return rc;
}

/* Every entry of the header but __metadata__; names unique. */
static int entries_parse(st_file *f, bgfm_err *e) {
    const json_node *r = &f->root;
    f->t = bgfm_calloc(e, (size_t)(r->n ? r->n : 1), sizeof *f->t, "safetensors tensor table");
    if (!f->t) return BGFM_ENOMEM;
    int rc = names_unique(f, e);
    for (int i = 0; i < r->n && !rc; i++) {
        if (!strcmp(r->keys[i], "__metadata__")) {
            f->meta = &r->kid[i];
            continue;
        }
        rc = entry_parse(f, r->keys[i], &r->kid[i], &f->t[f->nt], e);
        f->nt++;
    }
    if (rc) return rc;
    if (!f->meta || f->meta->k != JSON_OBJ)
        return bgfm_fail(e, BGFM_EDATA, "%s: no __metadata__ object: not written by bgfm export "
                         "or bgfm_torch, so the architecture is unknown", f->path);
    for (int i = 0; i < f->meta->n; i++)
        if (f->meta->kid[i].k != JSON_STR)
            return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ key %s is not a string", f->path,
                             f->meta->keys[i]);
    return coverage_check(f, e);
}

/* ---- metadata -> architecture ------------------------------------------------------ */
static const char *meta_str(const st_file *f, const char *key) {
    const json_node *v = json_get(f->meta, key);
    return v && v->k == JSON_STR ? v->str : NULL;
}

static int meta_int(const st_file *f, const char *key, int lo, int hi, int *out, bgfm_err *e) {
    const char *s = meta_str(f, key);
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi)
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ %s is %s%s%s; need an integer in "
                         "%d..%d", f->path, key, s ? "'" : "missing", s ? s : "", s ? "'" : "",
                         lo, hi);
    *out = (int)v;
    return 0;
}

/* atlases "a,b" and atlas_nodes "4,6" */
static int meta_atlases(const st_file *f, model_cfg *c, bgfm_err *e) {
    const char *names = meta_str(f, "atlases"), *nodes = meta_str(f, "atlas_nodes");
    if (!names || !nodes)
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ needs atlases and atlas_nodes", f->path);
    const char *p = names, *q = nodes;
    for (int a = 0;; a++) {
        size_t l = strcspn(p, ",");
        char *end = NULL;
        long n = strtol(q, &end, 10);
        if (a == MODEL_MAX_ATLASES || !atlas_name_ok(p, l) || end == q || n < 2 || n > (1 << 20) ||
            (*end && *end != ','))
            return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ atlases '%s' / atlas_nodes '%s': "
                             "need up to %d names (letters, digits, '_', '-') and as many node "
                             "counts >= 2", f->path, names, nodes, MODEL_MAX_ATLASES);
        memcpy(c->atlas[a], p, l);
        c->atlas[a][l] = '\0';
        c->atlas_nodes[a] = (int)n;
        c->n_atlases = a + 1;
        for (int b = 0; b < a; b++)
            if (!strcmp(c->atlas[b], c->atlas[a]))
                return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ atlases names %s twice", f->path,
                                 c->atlas[a]);
        if (!p[l] != !*end)
            return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ atlases and atlas_nodes differ in "
                             "length", f->path);
        if (!p[l]) return 0;
        p += l + 1;
        q = end + 1;
    }
}

/* At least the floats of the encoder the configuration describes (model.md section 6),
 * as a double: a guard against metadata that would allocate more than the file holds. */
static double encoder_floats(const model_cfg *c) {
    double H = c->H, F = c->F, nodes = 0, sq = 0;
    for (int a = 0; a < c->n_atlases; a++) {
        nodes += c->atlas_nodes[a];
        sq += (double)c->atlas_nodes[a] * c->atlas_nodes[a];
    }
    double blk = 5 * H * H + 2 * H * F;
    double ro = c->readout == MODEL_READOUT_REGION ? (double)c->rdim * H * (1 + nodes) : 0;
    return H * ((double)c->N_max + c->k) + (c->n_atlases + nodes) * H + c->L * blk + ro +
           (c->norm ? 2 * sq : 0);
}

static int meta_cfg(const st_file *f, model_cfg *c, int *full, bgfm_err *e) {
    memset(c, 0, sizeof *c);
    const char *fmt = meta_str(f, "format"), *ro = meta_str(f, "readout"),
               *nm = meta_str(f, "input_norm"), *ct = meta_str(f, "contents");
    if (!fmt || strcmp(fmt, "bgfm-safetensors"))
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ format is %s, not bgfm-safetensors: "
                         "not a bgfm model", f->path, fmt ? fmt : "missing");
    int ver = 0, rc = meta_int(f, "format_version", 1, 1 << 20, &ver, e);
    if (!rc && ver > EXPORT_FORMAT_VERSION)
        rc = bgfm_fail(e, BGFM_EDATA, "%s: format_version %d is newer than this bgfm reads (%d); "
                       "use a newer bgfm", f->path, ver, EXPORT_FORMAT_VERSION);
    const char *ik[] = {"H", "nh", "F", "k", "L", "Ld", "P", "N_max"};
    int *iv[] = {&c->H, &c->nh, &c->F, &c->k, &c->L, &c->Ld, &c->P, &c->N_max};
    int lo[] = {1, 1, 1, 0, 1, 1, 1, 2}, hi[] = {1 << 16, 1 << 10, 1 << 20, 1 << 10,
                                                MODEL_MAX_LAYERS, MODEL_MAX_LAYERS, 1 << 16, 1 << 20};
    for (int i = 0; i < 8 && !rc; i++) rc = meta_int(f, ik[i], lo[i], hi[i], iv[i], e);
    if (!rc) rc = meta_atlases(f, c, e);
    if (rc) return rc;
    c->readout = ro ? model_readout_parse(ro) : -1;
    c->norm = !nm ? -1 : !strcmp(nm, "population") ? 1 : !strcmp(nm, "none") ? 0 : -1;
    *full = !ct ? -1 : !strcmp(ct, "full") ? 1 : !strcmp(ct, "encoder") ? 0 : -1;
    if (c->readout < 0 || c->norm < 0 || *full < 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ needs readout (region|mean), "
                         "input_norm (population|none) and contents (encoder|full)", f->path);
    if (c->readout == MODEL_READOUT_REGION && (rc = meta_int(f, "readout_dim", 1, 1024, &c->rdim, e)))
        return rc;
    /* files written before the population head (model.md section 11) have neither key */
    if (meta_str(f, "pop_rank") && (rc = meta_int(f, "pop_rank", 0, 256, &c->pop_rank, e))) return rc;
    const char *ps = meta_str(f, "pop_site"); /* provenance, kept for the checkpoints made from it */
    const int psm = ps ? pop_site_fit_parse(ps) : -1;
    if (ps && psm < 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ pop_site is %s, not none, centre or "
                         "harmonise (how the head was fitted)", f->path, ps);
    c->pop_site_fit = ps ? 1 + psm : 0;
    const char *em = meta_str(f, "embedding");
    c->embed = em ? model_embed_parse(em) : MODEL_EMBED_ENCODER;
    if (c->embed < 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ embedding is %s, not encoder, "
                         "encoder+pop, pop or pcs+pop", f->path, em);
    if (meta_str(f, "pcs") && (rc = meta_int(f, "pcs", 0, 65536, &c->pcs, e))) return rc;
    int din = 0;
    if (meta_str(f, "D_in") && (meta_int(f, "D_in", 0, 1 << 21, &din, e) || din != c->N_max + c->k))
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ D_in is not N_max + k", f->path);
    bgfm_err ce;
    bgfm_err_clear(&ce);
    if (model_cfg_check(c, "metadata", &ce))
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ describes no valid model: %s", f->path,
                         ce.msg);
    if (encoder_floats(c) * 4 > (double)f->data_len)
        return bgfm_fail(e, BGFM_EDATA, "%s: __metadata__ describes an encoder of %.0f floats; "
                         "the file holds %lld bytes of data: metadata and tensors disagree",
                         f->path, encoder_floats(c), (long long)f->data_len);
    return 0;
}

/* ---- tensors -> model -------------------------------------------------------------- */
static int tensor_place(const st_file *f, const file_tensor *ft, model *m, int full, uint8_t *seen,
                        bgfm_err *e) {
    char bn[MODEL_NAME_MAX];
    const model_tensor *t = NULL;
    if (!export_bgfm_name(ft->name, bn, sizeof bn)) t = model_find(m, bn);
    if (!t || (!full && !export_is_encoder(bn)))
        return bgfm_fail(e, BGFM_EDATA, "%s: unexpected tensor %s: not a tensor of the %s the "
                         "metadata describes (atlases %s)", f->path, ft->name,
                         full ? "model" : "encoder", meta_str(f, "atlases"));
    if (ft->rank != (t->cols ? 2 : 1) || ft->shape[0] != t->rows ||
        (t->cols && ft->shape[1] != t->cols)) {
        char want[64], got[64];
        snprintf(want, sizeof want, t->cols ? "[%lld, %lld]" : "[%lld]", (long long)t->rows,
                 (long long)t->cols);
        snprintf(got, sizeof got, ft->rank == 2 ? "[%lld, %lld]" : "[%lld]",
                 (long long)ft->shape[0], (long long)ft->shape[1]);
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s has shape %s; the model the metadata "
                         "describes needs %s", f->path, ft->name, got, want);
    }
    float *w = m->w + t->off;
    int64_t n = t->rows * (t->cols ? t->cols : 1);
    int rc = read_at(f->fd, w, (size_t)n * sizeof *w, 8 + f->hlen + ft->begin, f->path, e);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    for (int64_t i = 0; !rc && i < n; i++) {
        uint32_t u;
        memcpy(&u, w + i, 4);
        u = __builtin_bswap32(u);
        memcpy(w + i, &u, 4);
    }
#endif
    for (int64_t i = 0; !rc && i < n; i++)
        if (!isfinite(w[i]))
            rc = bgfm_fail(e, BGFM_EDATA, "%s: tensor %s holds a NaN or Inf (element %lld)",
                           f->path, ft->name, (long long)i);
    seen[t - m->t] = 1;
    return rc;
}

static int tensors_load(const st_file *f, model *m, int full, bgfm_err *e) {
    uint8_t *seen = bgfm_calloc(e, (size_t)m->n_tensors, 1, "safetensors tensor marks");
    int rc = seen ? 0 : BGFM_ENOMEM;
    for (int i = 0; i < f->nt && !rc; i++) rc = tensor_place(f, &f->t[i], m, full, seen, e);
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        if (seen[i] || (!full && !export_is_encoder(m->t[i].name))) continue;
        char tn[MODEL_NAME_MAX + 16];
        if (export_torch_name(m->t[i].name, tn, sizeof tn)) snprintf(tn, sizeof tn, "%s", m->t[i].name);
        rc = bgfm_fail(e, BGFM_EDATA, "%s: tensor %s is missing (the %s the metadata describes "
                       "has it)", f->path, tn, full ? "model" : "encoder");
    }
    free(seen);
    return rc;
}

int export_load(const char *path, uint64_t seed, model *m, int *full, bgfm_err *e) {
    st_file f;
    memset(&f, 0, sizeof f);
    f.path = path;
    memset(m, 0, sizeof *m);
    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) return bgfm_fail(e, BGFM_EIO, "cannot open %s: %s", path, strerror(errno));
    model_cfg c;
    int whole = 0;
    int rc = header_read(&f, e);
    if (!rc) rc = entries_parse(&f, e);
    if (!rc) rc = meta_cfg(&f, &c, &whole, e);
    if (!rc) rc = model_init(m, &c, e);
    if (!rc) model_init_params(m, seed); /* the decoder and head of an encoder-only file */
    if (!rc) rc = tensors_load(&f, m, whole, e);
    if (rc) model_free(m);
    if (full) *full = whole;
    json_free(&f.root);
    free(f.t);
    close(f.fd);
    return rc;
}

int export_check_graphs(const char *path, const model *m, const graphs_store *gs, bgfm_err *e) {
    for (int a = 0; a < graphs_n_atlases(gs); a++) {
        const char *name = graphs_atlas_name(gs, a);
        int ma = model_atlas_find(m, name), N = graphs_atlas_nodes(gs, a);
        if (ma < 0)
            return bgfm_fail(e, BGFM_EDATA, "%s: no tensor embed.node.%s.weight: the graphs' "
                             "atlas '%s' is not an atlas of this model", path, name, name);
        if (m->cfg.atlas_nodes[ma] != N)
            return bgfm_fail(e, BGFM_EDATA, "%s: tensor embed.node.%s.weight has %d rows; atlas "
                             "'%s' of the graphs has %d nodes", path, name,
                             m->cfg.atlas_nodes[ma], name, N);
    }
    if (m->cfg.k != graphs_rwse_steps(gs))
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor input.weight has %d columns = N_max %d + %d "
                         "RWSE steps; the graphs have %d RWSE steps", path, m->D_in,
                         m->cfg.N_max, m->cfg.k, graphs_rwse_steps(gs));
    return 0;
}

/* ---- the command ------------------------------------------------------------------- */
static const char *export_usage =
    "usage: bgfm export CHECKPOINT --out FILE.safetensors [--full] [--no-sync]\n"
    "Writes the checkpoint's encoder (input layer, embeddings, encoder blocks, readout and the\n"
    "input normalisation buffers) as safetensors, under the names of the PyTorch module\n"
    "python/bgfm_torch, with the architecture and training corpus as __metadata__.\n"
    "--full: the whole pretraining model (also the decoder dec.* and projection head proj.*).\n"
    "--no-sync: do not fsync the file and its folder (scratch space, or a file system where\n"
    "fsync is slow); after a crash of the machine the file may be missing, empty or short.\n"
    "docs/export.md; the file is written as FILE.tmp-<pid> and renamed when complete.\n";

/* The corpus keys that the checkpoint's state does not hold: protocol, /pretrain_graphs,
 * the checksum; f is the open checkpoint. */
static int corpus_read(hid_t f, export_corpus *cp, char **proto, char **sha, bgfm_err *e) {
    int rc = 0;
    cp->n_graphs = -1;
    if (h5io_attr_exists(f, NULL, "protocol") && !(rc = h5io_attr_get_str(f, NULL, "protocol", proto, e)))
        cp->protocol = *proto;
    if (!rc && h5io_attr_exists(f, NULL, "sha256_model") &&
        !(rc = h5io_attr_get_str(f, NULL, "sha256_model", sha, e)))
        cp->sha256_model = *sha;
    if (!rc && h5io_exists(f, "/pretrain_graphs")) {
        int rank = 0;
        hsize_t d[8] = {0};
        if (!(rc = h5io_dims(f, "/pretrain_graphs", &rank, d, e))) cp->n_graphs = rank == 1 ? (int64_t)d[0] : -1;
    }
    return rc;
}

/* The checkpoint streamed into the output (ckpt_stream_read): each piece of a parameter
 * tensor goes from a small buffer straight to its place in the file, so the parameters
 * are never held whole; the checksum is verified at the end of the stream, before the
 * rename, and a mismatch removes the temporary file. */
static int export_local(const char *ckpt, const char *out, int full, int no_sync, bgfm_err *e) {
    model m;
    ckpt_state st;
    ckpt_stream cs = {.f = -1, .fd = -1};
    memset(&m, 0, sizeof m);
    memset(&st, 0, sizeof st);
    char *proto = NULL, *sha = NULL;
    export_corpus cp = {0};
    int rc = 0;
    if (access(ckpt, R_OK) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "export: cannot read checkpoint %s: %s", ckpt, strerror(errno));
    else if (H5Fis_hdf5(ckpt) <= 0)
        rc = bgfm_fail(e, BGFM_EDATA, "export: %s is not an HDF5 file, so not a bgfm checkpoint",
                       ckpt);
    if (!rc) rc = ckpt_stream_open(&cs, ckpt, &m, &st, e);
    if (!rc) rc = corpus_read(cs.f, &cp, &proto, &sha, e);
    st_out o;
    int begun = 0;
    if (!rc) {
        const char *base = strrchr(ckpt, '/');
        cp.config = st.config;
        cp.step = st.step;
        cp.epoch = st.epoch;
        cp.seed = st.seed;
        cp.source = base ? base + 1 : ckpt;
        rc = out_begin(&o, out, &m, &cp, full, e);
        o.no_sync = no_sync;
        begun = !rc;
    }
    if (!rc) rc = ckpt_stream_read(&cs, &m, out_piece, &o, e);
    int crc = ckpt_stream_close(&cs, e);
    if (!rc) rc = crc;
    if (begun) rc = out_finish(&o, rc, e); /* renamed only when everything above succeeded */
    free(st.config);
    free(proto);
    free(sha);
    model_free(&m);
    return rc;
}

int cmd_export(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0) fputs(export_usage, stdout);
        return 0;
    }
    const char *ckpt = NULL, *out = NULL;
    int full = 0, no_sync = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--full")) full = 1;
        else if (!strcmp(argv[i], "--no-sync")) no_sync = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !ckpt) ckpt = argv[i];
        else rc = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "export: unexpected argument '%s'\n%s", argv[i],
                                export_usage);
    }
    if (!rc && (!ckpt || !out))
        rc = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "export: a CHECKPOINT and --out FILE are required\n%s",
                           export_usage);
    if (!rc && !strcmp(ckpt, out))
        rc = bgfm_ctx_fail(ctx, BGFM_EUSAGE, "export: --out %s is the checkpoint itself", out);
    if (!rc && ctx->rank == 0) {
        rc = export_local(ckpt, out, full, no_sync, &ctx->err);
        if (!rc) log_info(ctx, "export: wrote %s (%s) from %s", out, full ? "full model" : "encoder", ckpt);
    }
    return bgfm_ctx_agree(ctx, rc);
}
