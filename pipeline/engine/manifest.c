/* manifest.c: input hashing shared across ranks, the hash cache, output hashing
 * and manifest.json read-back. Not the manifest writer's caller policy (run.c). */
#include "bgfm/manifest.h"

#include <cblas.h>
#include <string.h>
#include <sys/stat.h>

#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/sha256.h"
#include "bgfm/strlist.h"

void manifest_files_free(manifest_files *l) {
    if (!l->f) return;
    for (int i = 0; i < l->n; i++) free(l->f[i].path);
    free(l->f);
    l->f = NULL;
    l->n = 0;
}

/* One cache line: sha \t size \t mtime_ns \t inode \t path */
typedef struct cache_ent {
    char sha[65];
    int64_t size, mtime_ns, ino;
    char *path;
} cache_ent;

typedef struct hcache {
    int n;
    cache_ent *v;
} hcache;

static void cache_free(hcache *c) {
    for (int i = 0; i < c->n; i++) free(c->v[i].path);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

static void cache_load(const char *file, hcache *c) {
    bgfm_err e = {0};
    char *txt = NULL;
    size_t len = 0;
    c->n = 0;
    c->v = NULL;
    if (!fs_exists(file) || fs_read_all(file, &txt, &len, &e)) return;
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += txt[i] == '\n';
    c->v = bgfm_calloc(&e, (size_t)lines + 1, sizeof *c->v, "hash cache entries");
    if (!c->v) {
        free(txt);
        return;
    }
    char *save = NULL;
    for (char *ln = strtok_r(txt, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        cache_ent *ce = &c->v[c->n];
        long long sz, mt, in;
        int off = 0;
        char sha[65];
        if (sscanf(ln, "%64s\t%lld\t%lld\t%lld\t%n", sha, &sz, &mt, &in, &off) != 4 || !off ||
            strlen(sha) != 64)
            continue; /* a damaged line is just a cache miss */
        memcpy(ce->sha, sha, 65);
        ce->size = sz;
        ce->mtime_ns = mt;
        ce->ino = in;
        ce->path = bgfm_strdup(&e, ln + off);
        if (ce->path) c->n++;
    }
    free(txt);
}

static int stat_key(const char *path, int64_t *size, int64_t *mt, int64_t *ino) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *size = (int64_t)st.st_size;
    *mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    *ino = (int64_t)st.st_ino;
    return 0;
}

static const cache_ent *cache_find(const hcache *c, const char *path, int64_t size, int64_t mt,
                                   int64_t ino) {
    for (int i = c->n - 1; i >= 0; i--)
        if (!strcmp(c->v[i].path, path))
            return (c->v[i].size == size && c->v[i].mtime_ns == mt && c->v[i].ino == ino)
                       ? &c->v[i]
                       : NULL;
    return NULL;
}

enum { REC = 96 }; /* per-file record exchanged between ranks: sha + bytes */

int manifest_hash_inputs(bgfm_ctx *ctx, const char *workdir, char **paths, int n,
                         int write_cache, manifest_files *out) {
    out->n = 0;
    out->f = NULL;
    char *cdir = fs_join(workdir, ".bgfm", &ctx->err);
    char *cfile = cdir ? fs_join(cdir, "hashcache.tsv", &ctx->err) : NULL;
    hcache cache = {0};
    if (cfile) cache_load(cfile, &cache);
    char *recs = bgfm_calloc(&ctx->err, (size_t)(n ? n : 1), REC, "input hash records");
    char *all = recs ? bgfm_calloc(&ctx->err, (size_t)(n ? n : 1), REC, "input hash exchange")
                     : NULL;
    int rc = (cfile && recs && all) ? 0 : BGFM_ENOMEM;
    /* rank r hashes files r, r+size, ...; misses only */
    for (int i = ctx->rank; !rc && i < n; i += ctx->size) {
        int64_t size, mt, ino;
        if (stat_key(paths[i], &size, &mt, &ino) != 0) {
            rc = bgfm_fail(&ctx->err, BGFM_EIO,
                           "input '%s' cannot be read (missing?); check the paths in the "
                           "pipeline file",
                           paths[i]);
            break;
        }
        const cache_ent *ce = cache_find(&cache, paths[i], size, mt, ino);
        char sha[65];
        int64_t bytes = size;
        if (ce)
            memcpy(sha, ce->sha, 65);
        else
            rc = sha256_file_hex(paths[i], sha, &bytes, &ctx->err);
        if (!rc) snprintf(recs + (size_t)i * REC, REC, "%s %lld %d", sha, (long long)bytes, ce ? 1 : 0);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) {
        /* every record is filled by exactly one rank: a max-reduction of bytes merges them */
        rc = BGFM_MPI(&ctx->err, MPI_Allreduce(recs, all, n * REC, MPI_UNSIGNED_CHAR, MPI_MAX,
                                               ctx->comm));
        rc = bgfm_ctx_agree(ctx, rc);
    }
    if (!rc) {
        out->f = bgfm_calloc(&ctx->err, (size_t)(n ? n : 1), sizeof *out->f, "input hash list");
        int lrc = out->f ? 0 : BGFM_ENOMEM;
        int misses = 0;
        for (int i = 0; !lrc && i < n; i++) {
            long long b = 0;
            int hit = 0;
            out->f[i].path = bgfm_strdup(&ctx->err, paths[i]);
            if (!out->f[i].path) {
                lrc = BGFM_ENOMEM;
                break;
            }
            if (sscanf(all + (size_t)i * REC, "%64s %lld %d", out->f[i].sha, &b, &hit) != 3) {
                lrc = bgfm_fail(&ctx->err, BGFM_EINTERNAL, "input hash exchange failed");
                break;
            }
            out->f[i].bytes = b;
            out->n = i + 1;
            misses += !hit;
        }
        /* rank 0 refreshes the cache when anything was hashed anew */
        if (!lrc && ctx->rank == 0 && misses && write_cache) {
            FILE *mf = NULL;
            char *txt = NULL;
            size_t tl = 0;
            mf = open_memstream(&txt, &tl);
            if (mf) {
                for (int i = 0; i < n; i++) {
                    int64_t size, mt, ino;
                    if (stat_key(paths[i], &size, &mt, &ino) == 0)
                        fprintf(mf, "%s\t%lld\t%lld\t%lld\t%s\n", out->f[i].sha, (long long)size,
                                (long long)mt, (long long)ino, paths[i]);
                }
                /* keep other entries (other stages' inputs) */
                for (int j = 0; j < cache.n; j++) {
                    int dup = 0;
                    for (int i = 0; i < n && !dup; i++) dup = !strcmp(cache.v[j].path, paths[i]);
                    if (!dup)
                        fprintf(mf, "%s\t%lld\t%lld\t%lld\t%s\n", cache.v[j].sha,
                                (long long)cache.v[j].size, (long long)cache.v[j].mtime_ns,
                                (long long)cache.v[j].ino, cache.v[j].path);
                }
                fclose(mf);
                bgfm_err ce = {0}; /* a cache that cannot be written only costs time */
                if (!fs_mkdirs(cdir, &ce)) fs_write_atomic(cfile, txt, tl, &ce);
                free(txt);
            }
        }
        rc = bgfm_ctx_agree(ctx, lrc);
    }
    if (rc) manifest_files_free(out);
    cache_free(&cache);
    free(recs);
    free(all);
    free(cfile);
    free(cdir);
    return rc;
}

int manifest_hash_outputs(const char *workdir, const char *dir, manifest_files *out, bgfm_err *e) {
    (void)workdir;
    char **names = NULL;
    int n = 0;
    out->n = 0;
    out->f = NULL;
    int rc = fs_list_files(dir, &names, &n, e);
    if (rc) return rc;
    out->f = bgfm_calloc(e, (size_t)(n ? n : 1), sizeof *out->f, "output hash list");
    if (!out->f) rc = BGFM_ENOMEM;
    for (int i = 0; !rc && i < n; i++) {
        if (!strcmp(names[i], "manifest.json")) continue;
        char *full = fs_join(dir, names[i], e);
        if (!full) {
            rc = BGFM_ENOMEM;
            break;
        }
        manifest_file *mf = &out->f[out->n];
        rc = sha256_file_hex(full, mf->sha, &mf->bytes, e);
        free(full);
        if (rc) break;
        mf->path = names[i];
        names[i] = NULL;
        out->n++;
    }
    strlist_free(names, n);
    if (rc) manifest_files_free(out);
    return rc;
}

void manifest_list_digest(const manifest_files *l, int relative_names, char out[65]) {
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    for (int i = 0; i < l->n; i++) {
        const char *name = l->f[i].path;
        if (!relative_names) {
            const char *slash = strrchr(name, '/');
            name = slash ? slash + 1 : name;
        }
        sha256_update(&c, name, strlen(name) + 1);
        sha256_update(&c, l->f[i].sha, 64);
    }
    sha256_final(&c, d);
    sha256_hex(d, out);
}

/* dir/manifest.json's text into *txt (malloc'ed): 1; 0 (NULL) if there is none; -1 with e
 * set when it could not be read (memory, a read error). */
static int manifest_text(const char *dir, char **txt, bgfm_err *e) {
    char *p = fs_join(dir, "manifest.json", e);
    size_t len;
    int got = p ? 0 : -1;
    *txt = NULL;
    if (p && fs_exists(p)) got = fs_read_all(p, txt, &len, e) ? -1 : 1;
    free(p);
    return got;
}

int manifest_read(const char *dir, char fingerprint[65], char outputs_sha[65], bgfm_err *e) {
    char *txt = NULL;
    int ok = manifest_text(dir, &txt, e);
    if (ok > 0)
        ok = json_find_str(txt, "fingerprint", fingerprint, 65) &&
             json_find_str(txt, "outputs_sha256", outputs_sha, 65) && strlen(fingerprint) == 64;
    free(txt);
    return ok;
}

int manifest_read_ranks(const char *dir) {
    bgfm_err e = {0}; /* unreadable: 0, as absent (only the reason a stage reruns names it) */
    char *txt = NULL;
    double r = 0;
    if (manifest_text(dir, &txt, &e) > 0 && !json_find_num(txt, "ranks", &r)) r = 0;
    free(txt);
    return r >= 1 && r < 1e9 ? (int)r : 0;
}

int manifest_is_partial(const char *dir, bgfm_err *e) {
    char *txt = NULL, status[32] = "";
    int partial = manifest_text(dir, &txt, e);
    if (partial > 0)
        partial = json_find_str(txt, "status", status, sizeof status) && !strcmp(status, "partial");
    free(txt);
    return partial;
}

static void write_files(FILE *f, const char *key, const manifest_files *l) {
    fprintf(f, "  \"%s\": [", key);
    for (int i = 0; l && i < l->n; i++) {
        fprintf(f, "%s\n    {\"path\": ", i ? "," : "");
        json_write_str(f, l->f[i].path);
        fprintf(f, ", \"sha256\": \"%s\", \"bytes\": %lld}", l->f[i].sha, (long long)l->f[i].bytes);
    }
    fprintf(f, "%s],\n", (l && l->n) ? "\n  " : "");
}

int manifest_write(const char *dir, const manifest_info *m, bgfm_err *e) {
    char *t = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&t, &tl);
    if (!f) return bgfm_fail(e, BGFM_ENOMEM, "out of memory writing the manifest");
    fprintf(f, "{\n  \"format\": \"bgfm-manifest\",\n  \"format_version\": 1,\n  \"stage\": ");
    json_write_str(f, m->stage);
    fprintf(f, ",\n  \"kind\": ");
    json_write_str(f, m->kind);
    fprintf(f, ",\n  \"fingerprint\": \"%s\",\n  \"outputs_sha256\": \"%s\",\n", m->fingerprint,
            m->outputs_sha256);
    fprintf(f, "  \"status\": \"%s\",\n", m->partial ? "partial" : "complete");
    fprintf(f, "  \"code_version\": \"%s\",\n  \"code_rev\": \"%s\",\n  \"ranks\": %d,\n",
            BGFM_VERSION, BGFM_GITREV, m->ranks);
    /* The OpenBLAS build and the kernel it chose for this CPU (OPENBLAS_CORETYPE overrides):
     * float32 training follows the kernel's rounding (docs/pretrain.md). */
    fprintf(f, "  \"blas\": ");
    json_write_str(f, openblas_get_config());
    fprintf(f, ",\n");
    fprintf(f, "  \"pipeline\": ");
    json_write_str(f, m->pipeline_file);
    fprintf(f, ",\n  \"resolved\": ");
    json_write_str(f, m->resolved);
    fprintf(f, ",\n");
    write_files(f, "inputs", m->inputs);
    write_files(f, "outputs", m->outputs);
    fprintf(f, "  \"timings\": {\"started\": \"%s\", \"wall_s\": ", m->started);
    json_write_num(f, m->wall_s);
    fprintf(f, "},\n  \"stats\": {\"bytes_read\": ");
    json_write_num(f, m->bytes_read);
    fprintf(f, ", \"items\": ");
    json_write_num(f, m->items);
    fprintf(f, ", \"items_unit\": ");
    json_write_str(f, m->items_unit ? m->items_unit : "");
    fprintf(f, "},\n  \"skipped\": [");
    for (int64_t i = 0; i < m->n_skipped; i++) {
        fprintf(f, "%s\n    {\"item\": ", i ? "," : "");
        json_write_str(f, m->skipped_item[i]);
        fprintf(f, ", \"reason\": ");
        json_write_str(f, m->skipped_reason[i]);
        fprintf(f, "}");
    }
    fprintf(f, "%s]\n}\n", m->n_skipped ? "\n  " : "");
    fclose(f);
    char *path = fs_join(dir, "manifest.json", e);
    int rc = path ? fs_write_atomic(path, t, tl, e) : BGFM_ENOMEM;
    free(path);
    free(t);
    return rc;
}
