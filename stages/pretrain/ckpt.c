/* ckpt.c: checkpoint files (ckpt.h): tensors by name written collectively by row
 * ranges, architecture attributes, optimiser moments, resume state, block SHA-256
 * checksums, completion mark and atomic rename. Not the decision of when to save. */
#include "bgfm/ckpt.h"
#include "bgfm/card.h"
#include "bgfm/pop.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bgfm/h5io.h"
#include "bgfm/sha256.h"


int ckpt_write_tensors(hid_t f, const model *m, const char *group, const float *buf, bgfm_err *e) {
    char path[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        hsize_t dims[2] = {(hsize_t)t->rows, (hsize_t)t->cols};
        snprintf(path, sizeof path, "%s/%s", group, t->name);
        int rc = h5io_write_small(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->cols ? 2 : 1, dims,
                                  buf + t->off, 0, e);
        if (rc) return rc;
    }
    return 0;
}

/* Dataset `path` of the file exists with tensor t's shape. */
static int tensor_check(hid_t f, const model_tensor *t, const char *path, const char *file,
                        bgfm_err *e) {
    int rank = 0;
    hsize_t dims[8] = {0};
    if (!h5io_exists(f, path))
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s is missing; is it a bgfm checkpoint?",
                         file, path);
    int rc = h5io_dims(f, path, &rank, dims, e);
    if (rc) return rc;
    if (rank != (t->cols ? 2 : 1) || (int64_t)dims[0] != t->rows ||
        (t->cols && (int64_t)dims[1] != t->cols))
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s has the wrong shape for the model "
                         "described by its attributes", file, path);
    return 0;
}

int ckpt_read_tensors(hid_t f, const model *m, const char *group, float *buf, const char *file,
                      bgfm_err *e) {
    char path[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        snprintf(path, sizeof path, "%s/%s", group, t->name);
        int rc = tensor_check(f, t, path, file, e);
        if (!rc)
            rc = h5io_read_all(f, path, H5T_NATIVE_FLOAT, t->rows * (t->cols ? t->cols : 1),
                               buf + t->off, e);
        if (rc) return rc;
    }
    return 0;
}

int ckpt_write_arch(hid_t f, const char *group, const model *m, bgfm_err *e) {
    const model_cfg *c = &m->cfg;
    char names[MODEL_MAX_ATLASES * 65] = "";
    int64_t nodes[MODEL_MAX_ATLASES];
    for (int a = 0; a < c->n_atlases; a++) {
        if (a) strcat(names, ",");
        strcat(names, c->atlas[a]);
        nodes[a] = c->atlas_nodes[a];
    }
    int rc = h5io_attr_set_str(f, group, "atlases", names, e);
    if (!rc) {
        hsize_t d[1] = {(hsize_t)c->n_atlases};
        hid_t sp = H5Screate_simple(1, d, NULL);
        hid_t a = H5Acreate_by_name(f, group, "atlas_nodes", H5T_STD_I64LE, sp, H5P_DEFAULT,
                                    H5P_DEFAULT, H5P_DEFAULT);
        if (sp < 0 || a < 0 || H5Awrite(a, H5T_NATIVE_INT64, nodes) < 0)
            rc = bgfm_fail(e, BGFM_EIO, "writing attribute atlas_nodes of %s", group);
        if (a >= 0) H5Aclose(a);
        if (sp >= 0) H5Sclose(sp);
    }
    const char *k[] = {"H", "nh", "F", "k", "L", "Ld", "P", "N_max", "D_in"};
    int64_t v[] = {c->H, c->nh, c->F, c->k, c->L, c->Ld, c->P, c->N_max, m->D_in};
    for (int i = 0; i < 9 && !rc; i++) rc = h5io_attr_set_i64(f, group, k[i], &v[i], 1, e);
    if (!rc) rc = h5io_attr_set_str(f, group, "readout", model_readout_name(c->readout), e);
    if (!rc) rc = h5io_attr_set_str(f, group, "input_norm", c->norm ? "population" : "none", e);
    int64_t rd = c->rdim;
    if (!rc && c->readout == MODEL_READOUT_REGION)
        rc = h5io_attr_set_i64(f, group, "readout_dim", &rd, 1, e);
    int64_t pr = c->pop_rank;
    if (!rc) rc = h5io_attr_set_i64(f, group, "pop_rank", &pr, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, group, "embedding", model_embed_name(c->embed), e);
    const char *site_fit = c->pop_site_fit ? pop_site_name(c->pop_site_fit - 1) : NULL;
    if (!rc && c->pop_rank && site_fit) rc = h5io_attr_set_str(f, group, "pop_site", site_fit, e);
    int64_t pc = c->pcs;
    if (!rc && c->pcs) rc = h5io_attr_set_i64(f, group, "pcs", &pc, 1, e);
    return rc;
}

/* An integer attribute that files of older versions lack: *dst unchanged when absent,
 * else the value, or -1 outside [lo, hi] (model_cfg_check then names it). */
static int attr_int_opt(hid_t f, const char *group, const char *name, int64_t lo, int64_t hi,
                        int *dst, bgfm_err *e) {
    if (!h5io_attr_exists(f, group, name)) return 0;
    int64_t v = 0;
    int one = 1;
    int rc = h5io_attr_get_i64(f, group, name, &v, &one, e);
    if (!rc) *dst = v >= lo && v <= hi ? (int)v : -1;
    return rc;
}

/* A word attribute that files of older versions lack: *dst unchanged when absent, else
 * parse(word), refused naming the file, the attribute and the words it may be. */
static int attr_word_opt(hid_t f, const char *group, const char *name, int (*parse)(const char *),
                         const char *words, int *dst, const char *file, bgfm_err *e) {
    if (!h5io_attr_exists(f, group, name)) return 0;
    char *w = NULL;
    int rc = h5io_attr_get_str(f, group, name, &w, e);
    if (rc) return rc;
    const int v = parse(w);
    free(w);
    if (v < 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: attribute %s of %s is not %s", file, name, group,
                         words);
    *dst = v;
    return 0;
}

static int norm_parse(const char *w) {
    return !strcmp(w, "population") ? 1 : !strcmp(w, "none") ? 0 : -1;
}

int ckpt_read_arch(hid_t f, const char *group, model_cfg *c, const char *file, bgfm_err *e) {
    memset(c, 0, sizeof *c);
    char *names = NULL;
    int rc = h5io_attr_get_str(f, group, "atlases", &names, e);
    if (rc) return rc;
    int n = 0;
    for (char *s = names, *tok; (tok = strsep(&s, ",")) != NULL;) {
        if (n == MODEL_MAX_ATLASES || strlen(tok) >= sizeof c->atlas[0]) {
            free(names);
            return bgfm_fail(e, BGFM_EDATA, "%s: bad atlases attribute on %s", file, group);
        }
        snprintf(c->atlas[n++], sizeof c->atlas[0], "%s", tok);
    }
    free(names);
    c->n_atlases = n;
    int64_t nodes[MODEL_MAX_ATLASES];
    int cnt = MODEL_MAX_ATLASES;
    rc = h5io_attr_get_i64(f, group, "atlas_nodes", nodes, &cnt, e);
    if (rc) return rc;
    if (cnt != n) return bgfm_fail(e, BGFM_EDATA, "%s: atlas_nodes and atlases differ in length", file);
    for (int a = 0; a < n; a++) c->atlas_nodes[a] = (int)nodes[a];
    const char *k[] = {"H", "nh", "F", "k", "L", "Ld", "P", "N_max"};
    int *dst[] = {&c->H, &c->nh, &c->F, &c->k, &c->L, &c->Ld, &c->P, &c->N_max};
    for (int i = 0; i < 8; i++) {
        int64_t v = 0;
        int one = 1;
        rc = h5io_attr_get_i64(f, group, k[i], &v, &one, e);
        if (rc) return rc;
        *dst[i] = (int)v;
    }
    /* files written before the input normalisation have no `input_norm`: none; before the
     * region readout, no `readout`: the mean; before the population head, neither pop_rank
     * nor embedding: no head, the encoder's embedding; before pop_site auto, no pop_site */
    c->embed = MODEL_EMBED_ENCODER;
    int site = -1;
    if ((rc = attr_word_opt(f, group, "input_norm", norm_parse, "population or none", &c->norm,
                            file, e)) ||
        (rc = attr_word_opt(f, group, "readout", model_readout_parse, "mean or region",
                            &c->readout, file, e)) ||
        (rc = attr_word_opt(f, group, "embedding", model_embed_parse,
                            "encoder, encoder+pop, pop or pcs+pop", &c->embed, file, e)) ||
        (rc = attr_word_opt(f, group, "pop_site", pop_site_fit_parse, "none, centre or harmonise",
                            &site, file, e)))
        return rc;
    c->pop_site_fit = 1 + site; /* 0 when absent: not known */
    if (c->readout == MODEL_READOUT_REGION) {
        int64_t v = 0;
        int one = 1;
        rc = h5io_attr_get_i64(f, group, "readout_dim", &v, &one, e);
        if (rc) return rc;
        c->rdim = v > 0 && v <= 1024 ? (int)v : -1;
    }
    if ((rc = attr_int_opt(f, group, "pop_rank", 0, 256, &c->pop_rank, e))) return rc;
    /* the readout's axes (embedding pcs+pop) exist since session 16; absent: none */
    if ((rc = attr_int_opt(f, group, "pcs", 0, 65536, &c->pcs, e))) return rc;
    return model_cfg_check(c, file, e);
}

/* ---- SHA-256 of a buffer (sha256.c picks the x86 SHA extensions at run time) ---- */
void ckpt_sha256(const void *data, size_t n, uint8_t out[32]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_final(&c, out);
}

/* ---- checksum ---------------------------------------------------------------------
 * The state is checksummed in fixed blocks of CKPT_HASH_BLOCK bytes of the little-endian
 * float32 arrays (parameters, then AdamW m, then v, each split on its own), so ranks
 * can do blocks in parallel (block i by rank i % size) and any rank count gets the same
 * digests. A block's digest is its CRC-32 (format 3: ISA-L's crc32_gzip_refl, the CRC of
 * zlib/gzip, 4 bytes little-endian; ~10x faster than SHA-256, which format 2 used, 32
 * bytes). sha256_model = SHA-256(parameter block digests); sha256 = SHA-256(all block
 * digests || int64 LE step, epoch, position, seed, optimiser t (-1 without)). */
static size_t dig_size(int version) { return version >= 3 ? 4 : 32; }

static int64_t n_blocks(int64_t floats) {
    int64_t bytes = floats * (int64_t)sizeof(float);
    return (bytes + CKPT_HASH_BLOCK - 1) / CKPT_HASH_BLOCK;
}

static void hash_array(const float *a, int64_t floats, int64_t first, int part, int nparts,
                       int version, uint8_t *dig) {
    const unsigned char *p = (const unsigned char *)a;
    int64_t bytes = floats * (int64_t)sizeof(float), nb = n_blocks(floats);
    size_t ds = dig_size(version);
    for (int64_t k = 0; k < nb; k++) {
        if ((first + k) % nparts != part) continue;
        int64_t o = k * CKPT_HASH_BLOCK, len = bytes - o < CKPT_HASH_BLOCK ? bytes - o : CKPT_HASH_BLOCK;
        uint8_t *d = dig + ds * (size_t)(first + k);
        if (version >= 3) {
            uint32_t crc = crc32_gzip_refl(0, p + o, (uint64_t)len);
            for (int b = 0; b < 4; b++) d[b] = (uint8_t)(crc >> (8 * b));
        } else {
            ckpt_sha256(p + o, (size_t)len, d);
        }
    }
}

/* Block digests of this part into dig (zeroed elsewhere); returns the block count. */
static int64_t digest_blocks(const model *m, const optim *o, int part, int nparts, int version,
                             uint8_t *dig) {
    int64_t nb = n_blocks(m->n_params);
    if (!dig) return o ? 3 * nb : nb;
    memset(dig, 0, (size_t)(o ? 3 * nb : nb) * dig_size(version));
    hash_array(m->w, m->n_params, 0, part, nparts, version, dig);
    if (o) {
        hash_array(o->m, m->n_params, nb, part, nparts, version, dig);
        hash_array(o->v, m->n_params, 2 * nb, part, nparts, version, dig);
    }
    return o ? 3 * nb : nb;
}

static void digest_final(const model *m, const optim *o, const ckpt_state *st, int version,
                         const uint8_t *dig, char model_hex[65], char all_hex[65]) {
    int64_t nb = n_blocks(m->n_params);
    size_t ds = dig_size(version);
    uint8_t d[32];
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, dig, (size_t)nb * ds);
    sha256_final(&c, d);
    sha256_hex(d, model_hex);
    int64_t rec[5] = {st ? st->step : 0, st ? st->epoch : 0, st ? st->pos : 0,
                      st ? (int64_t)st->seed : 0, o ? o->t : -1};
    sha256_init(&c);
    sha256_update(&c, dig, (size_t)(o ? 3 * nb : nb) * ds);
    sha256_update(&c, rec, sizeof rec);
    sha256_final(&c, d);
    sha256_hex(d, all_hex);
}

/* The checksums computed by one process alone, without MPI (ckpt_load, which also runs
 * in processes that never initialised MPI: `bgfm export` started alone). */
static int checksums_local(const model *m, const optim *o, const ckpt_state *st, int version,
                           char model_hex[65], char all_hex[65], bgfm_err *e) {
    int64_t nb = digest_blocks(m, o, 0, 1, version, NULL);
    uint8_t *dig = bgfm_malloc(e, (size_t)nb * dig_size(version), "checkpoint digests");
    if (!dig) return BGFM_ENOMEM;
    digest_blocks(m, o, 0, 1, version, dig);
    digest_final(m, o, st, version, dig, model_hex, all_hex);
    free(dig);
    return 0;
}

/* This rank's block digests in a thread of its own, overlapping the HDF5 writes (the
 * thread only reads the arrays and makes no MPI or HDF5 call). */
typedef struct hash_job {
    const model *m;
    const optim *o;
    int part, nparts, version;
    uint8_t *dig;
} hash_job;

static void *hash_main(void *arg) {
    hash_job *j = arg;
    digest_blocks(j->m, j->o, j->part, j->nparts, j->version, j->dig);
    return NULL;
}

/* Combine every rank's digests (disjoint blocks, zero elsewhere: bitwise OR) and finish. */
static int digest_combine(MPI_Comm comm, int size, const model *m, const optim *o,
                          const ckpt_state *st, int version, uint8_t *dig, char model_hex[65],
                          char all_hex[65], bgfm_err *e) {
    int64_t nb = digest_blocks(m, o, 0, 1, version, NULL);
    if (size > 1)
        BGFM_MPI_CHECK(e, MPI_Allreduce(MPI_IN_PLACE, dig, (int)(nb * (int64_t)dig_size(version)),
                                        MPI_UNSIGNED_CHAR, MPI_BOR, comm));
    digest_final(m, o, st, version, dig, model_hex, all_hex);
    return 0;
}

int ckpt_checksums(MPI_Comm comm, const model *m, const optim *o, const ckpt_state *st,
                   int version, char model_hex[65], char all_hex[65], bgfm_err *e) {
    int rank = 0, size = 1;
    BGFM_MPI_CHECK(e, MPI_Comm_rank(comm, &rank));
    BGFM_MPI_CHECK(e, MPI_Comm_size(comm, &size));
    int64_t nb = digest_blocks(m, o, 0, 1, version, NULL);
    uint8_t *dig = bgfm_malloc(e, (size_t)nb * dig_size(version), "checkpoint digests");
    int arc = bgfm_err_agree(comm, e, dig ? 0 : BGFM_ENOMEM); /* together into the reduction */
    if (arc) {
        free(dig);
        return arc;
    }
    digest_blocks(m, o, rank, size, version, dig);
    int rc = digest_combine(comm, size, m, o, st, version, dig, model_hex, all_hex, e);
    free(dig);
    return rc;
}

/* ---- collective save -------------------------------------------------------------- */
/* Independent (not collective) write of rows [r0, r0 + nr): each rank's range is one
 * contiguous byte range of a contiguous dataset, so a plain write is the fastest; a
 * rank without rows makes no call. */
static int write_rows_independent(hid_t d, int rank, const hsize_t *dims, int64_t r0, int64_t nr,
                                  const float *buf, const char *path, bgfm_err *e) {
    if (nr <= 0) return 0;
    hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)nr, rank == 2 ? dims[1] : 1};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
    int rc = 0;
    if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0) {
        char msg[512];
        bgfm_h5_errstr(msg, sizeof msg);
        rc = bgfm_fail(e, BGFM_EIO, "writing rows of %s failed (disk full?): %s", path, msg);
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

/* Every tensor as group/<name>; rank r writes rows [r rows / size, (r+1) rows / size). */
static int write_tensors_par(hid_t f, const model *m, const char *group, const float *buf, int rank,
                             int size, bgfm_err *e) {
    char path[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        hsize_t dims[2] = {(hsize_t)t->rows, (hsize_t)t->cols};
        snprintf(path, sizeof path, "%s/%s", group, t->name);
        hid_t d = h5io_dset_create(f, path, H5T_IEEE_F32LE, t->cols ? 2 : 1, dims, NULL, 0, e);
        if (d < 0) return e->code ? e->code : BGFM_EIO;
        int64_t r0 = t->rows * rank / size, r1 = t->rows * (rank + 1) / size;
        int64_t rowlen = t->cols ? t->cols : 1;
        int rc = write_rows_independent(d, t->cols ? 2 : 1, dims, r0, r1 - r0,
                                        buf + t->off + r0 * rowlen, path, e);
        if (H5Dclose(d) < 0 && !rc) rc = bgfm_fail(e, BGFM_EIO, "closing dataset %s", path);
        if (rc) return rc;
    }
    return 0;
}

static void test_pause(long ms) {
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* fsync a file or folder (rank 0, before and after the rename). */
static int sync_path(const char *path, int dir, bgfm_err *e) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return bgfm_fail(e, BGFM_EIO, "cannot open %s to sync it: %s", path, strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = bgfm_fail(e, BGFM_EIO, "fsync of %s failed (disk full?): %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* hex SHA-256 over the SHA-256s of st's extra arrays, in order; 0, or BGFM_ENOMEM (hex
 * then "") */
static int extra_digest(const ckpt_state *st, char hex[65], bgfm_err *e) {
    uint8_t *all = bgfm_malloc(e, (size_t)(st->n_extra ? st->n_extra : 1) * 32,
                               "extra array digests"), out[32];
    hex[0] = '\0';
    if (!all) return BGFM_ENOMEM;
    for (int i = 0; i < st->n_extra; i++)
        ckpt_sha256(st->extra[i], (size_t)st->extra_n[i] * sizeof(double), all + 32 * i);
    ckpt_sha256(all, (size_t)st->n_extra * 32, out);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
    free(all);
    return 0;
}

/* /extra/<name> of every extra array (collective; rank 0's bytes) and sha256_extra (rank
 * 0's digest) */
static int write_extra(MPI_Comm comm, hid_t f, const ckpt_state *st, bgfm_err *e) {
    int rc = 0;
    char path[256], hex[65];
    for (int i = 0; i < st->n_extra && !rc; i++) {
        hsize_t d[1] = {(hsize_t)st->extra_n[i]};
        snprintf(path, sizeof path, "/extra/%s", st->extra_name[i]);
        rc = h5io_write_small(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d, st->extra[i], 0, e);
    }
    int drc = extra_digest(st, hex, e); /* a failure is agreed below, after the Bcast */
    if (!rc) rc = drc;
    int brc = BGFM_MPI(e, MPI_Bcast(hex, 65, MPI_CHAR, 0, comm));
    rc = bgfm_err_agree(comm, e, rc ? rc : brc);
    return rc ? rc : h5io_attr_set_str(f, NULL, "sha256_extra", hex, e);
}

/* Read st's extra arrays back and check their sizes and digest. */
static int read_extra(hid_t f, const ckpt_state *st, const char *path, bgfm_err *e) {
    int rc = 0;
    char name[256], hex[65], *want = NULL;
    for (int i = 0; i < st->n_extra && !rc; i++) {
        snprintf(name, sizeof name, "/extra/%s", st->extra_name[i]);
        rc = h5io_read_all(f, name, H5T_NATIVE_DOUBLE, st->extra_n[i], st->extra[i], e);
    }
    if (!rc) rc = h5io_attr_get_str(f, NULL, "sha256_extra", &want, e);
    if (!rc) rc = extra_digest(st, hex, e);
    if (!rc && strcmp(want, hex))
        rc = bgfm_fail(e, BGFM_EDATA, "%s: checksum mismatch: stored SHA-256 %.16s... of /extra "
                       "differs from that of the data read (%.16s...); the file is corrupted: "
                       "delete it (an earlier checkpoint is then used, if any)", path, want, hex);
    free(want);
    return rc;
}

/* The corpus card and the subjects' keys (card.h), freed. */
static void card_free(char *card, char **keys, int64_t nk) {
    free(card);
    for (int64_t i = 0; i < nk; i++) free(keys[i]);
    free(keys);
}

int ckpt_save_par(MPI_Comm comm, const char *path, const model *m, const optim *o,
                  const ckpt_state *st, bgfm_err *e) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return bgfm_fail(e, BGFM_EUSAGE, "checkpoint path too long: %s", path);
    int rank = 0, size = 1;
    BGFM_MPI_CHECK(e, MPI_Comm_rank(comm, &rank));
    BGFM_MPI_CHECK(e, MPI_Comm_size(comm, &size));
    char hm[65], ha[65];
    const int64_t ver = CKPT_FORMAT_VERSION; /* written, and what the digests follow */
    int64_t nb = digest_blocks(m, o, 0, 1, (int)ver, NULL);
    uint8_t *dig = bgfm_malloc(e, (size_t)nb * dig_size((int)ver), "checkpoint digests");
    char blas[CKPT_BLAS_MAX]; /* rank 0's kernel: an attribute has one value on every rank */
    snprintf(blas, sizeof blas, "%s", openblas_get_config());
    int brc = size > 1 ? BGFM_MPI(e, MPI_Bcast(blas, (int)sizeof blas, MPI_CHAR, 0, comm)) : 0;
    /* what needs memory of its own (the corpus card, the subjects' keys) is made before the
     * file: a rank that fails there must not leave the others in a collective write */
    int lrc = !dig ? BGFM_ENOMEM : brc;
    char *card = NULL, **keys = NULL;
    int64_t nk = 0;
    if (!lrc && st && st->graphs && st->gs) {
        card = card_make(st->gs, st->graphs, st->n_graphs, st->pipe, st->protocol, st->config, e);
        lrc = !card ? (e->code ? e->code : BGFM_ENOMEM)
                    : card_subject_keys(st->gs, st->graphs, st->n_graphs, &keys, &nk, e);
    }
    int arc = bgfm_err_agree(comm, e, lrc); /* together into h5io_create */
    if (arc) {
        free(dig);
        card_free(card, keys, nk);
        return arc;
    }
    hash_job job = {m, o, rank, size, (int)ver, dig};
    pthread_t th;
    int threaded = bgfm_thread_start(&th, hash_main, &job) == 0;
    if (!threaded) hash_main(&job);
    hid_t f = h5io_create(comm, tmp, e);
    int rc = f < 0 ? (e->code ? e->code : BGFM_EIO) : 0;
    if (!rc) rc = h5io_attr_set_str(f, NULL, "format", "bgfm-checkpoint", e);
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "format_version", &ver, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, NULL, "blas", blas, e);
    if (!rc) rc = write_tensors_par(f, m, "/model", m->w, rank, size, e);
    if (!rc) rc = ckpt_write_arch(f, "/model", m, e);
    if (!rc && o) rc = write_tensors_par(f, m, "/optim/m", o->m, rank, size, e);
    if (!rc && o) rc = write_tensors_par(f, m, "/optim/v", o->v, rank, size, e);
    if (!rc && o) rc = h5io_attr_set_i64(f, "/optim", "t", &o->t, 1, e);
    if (!rc && st) {
        hsize_t none[1] = {0};
        int64_t v[4] = {st->step, st->epoch, st->pos, (int64_t)st->seed};
        const char *k[4] = {"/state/step", "/state/epoch", "/state/position", "/state/seed"};
        for (int i = 0; i < 4 && !rc; i++)
            rc = h5io_write_small(f, k[i], H5T_STD_I64LE, H5T_NATIVE_INT64, 0, none, &v[i], 0, e);
        if (!rc)
            rc = h5io_attr_set_str(f, "/state", "generator",
                                   "philox4x32-10 counter-based; draws keyed by (seed, purpose, "
                                   "epoch or step, global graph index): state = (seed, step, "
                                   "epoch, position)", e);
        if (!rc) rc = h5io_attr_set_str(f, "/state", "config", st->config ? st->config : "", e);
        int64_t ranks = size;
        if (!rc) rc = h5io_attr_set_i64(f, "/state", "written_by_ranks", &ranks, 1, e);
        if (!rc && st->graphs) {
            hsize_t ng[1] = {(hsize_t)st->n_graphs};
            rc = h5io_write_small(f, "/pretrain_graphs", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, ng,
                                  st->graphs, 0, e);
            if (!rc) rc = h5io_attr_set_str(f, NULL, "protocol", st->protocol, e);
            if (!rc && st->gs) rc = h5io_attr_set_str(f, NULL, "corpus", card, e);
            if (!rc && st->gs)
                rc = h5io_write_strings(f, "/pretrain_subjects", (const char *const *)keys, nk, 0, e);
        }
    }
    if (!rc && st && st->n_extra) rc = write_extra(comm, f, st, e);
    card_free(card, keys, nk);
    if (threaded) pthread_join(th, NULL);
    if (f >= 0) { /* collective; every rank reaches it (the file exists on all or none) */
        int hrc = digest_combine(comm, size, m, o, st, (int)ver, dig, hm, ha, e);
        rc = bgfm_err_agree(comm, e, rc ? rc : hrc); /* together into the attribute writes */
    }
    free(dig);
    if (!rc) rc = h5io_attr_set_str(f, NULL, "sha256_model", hm, e);
    if (!rc) rc = h5io_attr_set_str(f, NULL, "sha256", ha, e);
    if (!rc && st) test_pause(st->pause_ms);
    int64_t one = 1;
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "complete", &one, 1, e); /* completion mark, last */
    int rc2 = h5io_close(&f, tmp, e);
    if (!rc) rc = rc2;
    if (rank == 0) {
        if (!rc) rc = sync_path(tmp, 0, e);
        if (!rc && rename(tmp, path) != 0)
            rc = bgfm_fail(e, BGFM_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (!rc) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            rc = sync_path(slash ? dir : ".", 1, e);
        }
        if (rc) remove(tmp);
    }
    /* rank 0's rename decides; everyone returns the same status */
    int all[2] = {rc, 0};
    if (size > 1) BGFM_MPI_CHECK(e, MPI_Bcast(all, 1, MPI_INT, 0, comm));
    if (rank != 0 && !rc && all[0])
        rc = bgfm_fail(e, all[0], "rank 0 could not complete checkpoint %s", path);
    return rc;
}

int ckpt_save(const char *path, const model *m, const optim *o, const ckpt_state *st,
              bgfm_err *e) {
    return ckpt_save_par(MPI_COMM_SELF, path, m, o, st, e);
}

int ckpt_is_complete(const char *path) {
    bgfm_err e = {0};
    hid_t f = h5io_open(MPI_COMM_SELF, path, &e);
    if (f < 0) return 0;
    int64_t v = 0;
    int one = 1;
    int ok = h5io_attr_exists(f, NULL, "complete") && !h5io_attr_get_i64(f, NULL, "complete", &v, &one, &e) && v == 1;
    h5io_close(&f, path, &e);
    return ok;
}

/* The architecture attributes must agree with the stored tensors BEFORE model_init
 * allocates from them: tensors that pin H, F, P, N_max and k must have those shapes
 * and their bytes in the file, so a damaged attribute cannot make us allocate more
 * than the file can describe. Names as in model.c's layout. */
static int arch_fits_file(hid_t f, const model_cfg *c, const char *path, bgfm_err *e) {
    const struct { const char *name; int64_t rows, cols; } pin[] = {
        {"/model/in/W", c->H, (int64_t)c->N_max + c->k}, {"/model/dec/re/W", c->H, c->H},
        {"/model/dec/out/W", c->N_max, c->H},           {"/model/proj/W2", c->P, c->H},
        {"/model/enc/0/ffn/W1", c->F, c->H}};
    for (size_t i = 0; i < sizeof pin / sizeof pin[0]; i++) {
        int rank = 0;
        hsize_t dims[8] = {0};
        if (h5io_dims(f, pin[i].name, &rank, dims, e)) return e->code;
        hid_t d = H5Dopen2(f, pin[i].name, H5P_DEFAULT);
        hsize_t stored = d >= 0 ? H5Dget_storage_size(d) : 0;
        if (d >= 0) H5Dclose(d);
        if (rank != 2 || (int64_t)dims[0] != pin[i].rows || (int64_t)dims[1] != pin[i].cols ||
            stored / sizeof(float) / (dims[1] ? dims[1] : 1) < dims[0])
            return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s does not match the architecture "
                             "attributes of /model (%lld x %lld); the checkpoint is damaged",
                             path, pin[i].name, (long long)pin[i].rows, (long long)pin[i].cols);
    }
    return 0;
}


/* The completion mark, then the architecture (checked against the stored tensors) into
 * *m (model_init): what every load checks before it reads parameters. */
static int open_model(hid_t f, const char *path, model *m, bgfm_err *e) {
    model_cfg c;
    int64_t done = 0;
    int one = 1, rc = 0;
    if (!h5io_attr_exists(f, NULL, "complete") || h5io_attr_get_i64(f, NULL, "complete", &done, &one, e) || done != 1)
        rc = bgfm_fail(e, BGFM_EDATA, "%s is not a complete checkpoint (no completion mark); "
                       "use another one or start from scratch", path);
    if (!rc) rc = ckpt_read_arch(f, "/model", &c, path, e);
    if (!rc) rc = arch_fits_file(f, &c, path, e);
    if (!rc) rc = model_init(m, &c, e);
    return rc;
}

/* /state: step, epoch, position, seed, and the configuration text when `config`. */
static int read_state(hid_t f, const char *path, ckpt_state *st, int config, bgfm_err *e) {
    memset(st, 0, sizeof *st);
    int64_t v[4] = {0};
    const char *k[4] = {"/state/step", "/state/epoch", "/state/position", "/state/seed"};
    int rc = 0;
    for (int i = 0; i < 4 && !rc; i++) rc = h5io_read_all(f, k[i], H5T_NATIVE_INT64, 1, &v[i], e);
    st->step = v[0];
    st->epoch = v[1];
    st->pos = v[2];
    st->seed = (uint64_t)v[3];
    if (!rc && config) rc = h5io_attr_get_str(f, "/state", "config", &st->config, e);
    if (!rc && h5io_attr_exists(f, NULL, "blas")) {
        char *b = NULL;
        rc = h5io_attr_get_str(f, NULL, "blas", &b, e);
        if (!rc) snprintf(st->blas, sizeof st->blas, "%s", b);
        free(b);
    }
    return rc;
}

/* format_version (1 when absent: no checksums), one that this bgfm reads. Its block
 * digests: SHA-256 in 2, CRC-32 from 3 on. */
static int read_version(hid_t f, const char *path, int64_t *version, bgfm_err *e) {
    int one = 1, rc = 0;
    *version = 1;
    if (h5io_attr_exists(f, NULL, "format_version"))
        rc = h5io_attr_get_i64(f, NULL, "format_version", version, &one, e);
    if (!rc && (*version < 1 || *version > CKPT_FORMAT_VERSION))
        rc = bgfm_fail(e, BGFM_EDATA, "%s: checkpoint format_version %lld is not one this bgfm "
                       "reads (1..%d); use a newer bgfm or another checkpoint", path,
                       (long long)*version, CKPT_FORMAT_VERSION);
    return rc;
}

/* The stored checksum `attr` (sha256 or sha256_model) against the one of the data read. */
static int digest_compare(hid_t f, const char *path, const char *attr, const char *got,
                          bgfm_err *e) {
    char *want = NULL;
    int rc = h5io_attr_get_str(f, NULL, attr, &want, e);
    if (!rc && strcmp(want, got))
        rc = bgfm_fail(e, BGFM_EDATA, "%s: checksum mismatch: stored SHA-256 %.16s... differs "
                       "from that of the data read (%.16s...); the file is corrupted (disk or "
                       "copy error): delete it (an earlier checkpoint is then used, if any)",
                       path, want, got);
    free(want);
    return rc;
}

int ckpt_load(const char *path, model *m, optim *o, ckpt_state *st, bgfm_err *e) {
    hid_t f = h5io_open(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    int one = 1, rc = open_model(f, path, m, e);
    if (!rc) rc = ckpt_read_tensors(f, m, "/model", m->w, path, e);
    if (!rc && o) {
        rc = optim_init(o, m, e);
        if (!rc && !h5io_exists(f, "/optim/m"))
            rc = bgfm_fail(e, BGFM_EDATA, "%s has no optimiser state (/optim)", path);
        if (!rc) rc = ckpt_read_tensors(f, m, "/optim/m", o->m, path, e);
        if (!rc) rc = ckpt_read_tensors(f, m, "/optim/v", o->v, path, e);
        if (!rc) rc = h5io_attr_get_i64(f, "/optim", "t", &o->t, &one, e);
    }
    ckpt_state ex; /* the caller's extra arrays, filled below */
    memset(&ex, 0, sizeof ex);
    if (st) ex = *st;
    if (!rc && st) rc = read_state(f, path, st, 1, e);
    if (st) {
        st->n_extra = ex.n_extra, st->extra_name = ex.extra_name, st->extra = ex.extra;
        st->extra_n = ex.extra_n;
    }
    /* checksum: the model alone, or the whole state with o */
    int64_t version = 1;
    if (!rc) rc = read_version(f, path, &version, e);
    if (!rc && h5io_attr_exists(f, NULL, "sha256")) {
        char hm[65], ha[65];
        ckpt_state rs;
        memset(&rs, 0, sizeof rs);
        if (st) rs = *st;
        else if (o) rc = read_state(f, path, &rs, 0, e); /* its record is in the full checksum */
        if (!rc) rc = checksums_local(m, o, &rs, (int)version, hm, ha, e);
        if (!rc) rc = digest_compare(f, path, o ? "sha256" : "sha256_model", o ? ha : hm, e);
    }
    if (!rc && ex.n_extra) rc = read_extra(f, &ex, path, e);
    h5io_close(&f, path, e);
    return rc;
}

/* ---- streamed load ------------------------------------------------------------------
 * The block digests of the parameters fed as one byte stream in layout order, piece by
 * piece: the digests hash_array computes on the whole array (a CRC-32 continues across
 * pieces as zlib's does, SHA-256 by its update). */
typedef struct block_hash {
    int version;
    uint8_t *dig;     /* the digests, dig_size(version) bytes each */
    int64_t k, fill;  /* the block being hashed, its bytes so far */
    uint32_t crc;
    sha256_ctx sha;
} block_hash;

static void block_end(block_hash *h) {
    uint8_t *d = h->dig + dig_size(h->version) * (size_t)h->k;
    if (h->version >= 3)
        for (int b = 0; b < 4; b++) d[b] = (uint8_t)(h->crc >> (8 * b));
    else
        sha256_final(&h->sha, d);
    h->k++;
    h->fill = 0;
}

static void block_feed(block_hash *h, const unsigned char *p, int64_t n) {
    while (n > 0) {
        if (h->fill == 0) {
            h->crc = 0;
            if (h->version < 3) sha256_init(&h->sha);
        }
        int64_t take = CKPT_HASH_BLOCK - h->fill < n ? CKPT_HASH_BLOCK - h->fill : n;
        if (h->version >= 3) h->crc = crc32_gzip_refl(h->crc, p, (uint64_t)take);
        else sha256_update(&h->sha, p, (size_t)take);
        h->fill += take;
        p += take;
        n -= take;
        if (h->fill == CKPT_HASH_BLOCK) block_end(h);
    }
}

int ckpt_stream_open(ckpt_stream *s, const char *path, model *m, ckpt_state *st, bgfm_err *e) {
    memset(m, 0, sizeof *m);
    s->path = path;
    s->version = 1;
    s->fd = -1;
    s->f = h5io_open(MPI_COMM_SELF, path, e);
    if (s->f < 0) return e->code ? e->code : BGFM_EIO;
    struct stat sb;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &sb) != 0)
        return bgfm_fail(e, BGFM_EIO, "cannot read %s: %s", path, strerror(errno));
    s->size = (int64_t)sb.st_size;
    int rc = open_model(s->f, path, m, e);
    if (!rc) rc = read_state(s->f, path, st, 1, e);
    if (!rc) rc = read_version(s->f, path, &s->version, e);
    return rc;
}

/* Rows [r0, r0 + nr) of tensor t (dataset d, file space fs, `name` in the file) into buf. */
static int read_rows(hid_t d, hid_t fs, const model_tensor *t, int64_t r0, int64_t nr, float *buf,
                     const char *name, const char *file, bgfm_err *e) {
    hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)nr, (hsize_t)t->cols};
    hid_t ms = H5Screate_simple(t->cols ? 2 : 1, count, NULL);
    int rc = 0;
    if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0) {
        char msg[512];
        bgfm_h5_errstr(msg, sizeof msg);
        rc = bgfm_fail(e, BGFM_EDATA, "%s: reading tensor %s failed (truncated or damaged "
                       "checkpoint): %s", file, name, msg);
    }
    if (ms >= 0) H5Sclose(ms);
    return rc;
}

/* Where the data of dataset d (`bytes` long) starts in the file when they can be read
 * straight from it: one contiguous, unfiltered block of little-endian float32 (the host's
 * float) at a 4-byte aligned offset inside the file, as bgfm writes every tensor; else -1,
 * and HDF5 reads the dataset (another writer's layout, a big-endian host). */
static int64_t direct_offset(const ckpt_stream *s, hid_t d, int64_t bytes) {
    hid_t dcpl = H5Dget_create_plist(d), type = H5Dget_type(d);
    int ok = dcpl >= 0 && type >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
             H5Pget_nfilters(dcpl) == 0 && H5Tequal(type, H5T_IEEE_F32LE) > 0 &&
             H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) > 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    haddr_t off = ok ? H5Dget_offset(d) : HADDR_UNDEF; /* absolute: base address included */
    if (off == HADDR_UNDEF || off % sizeof(float) != 0 || H5Dget_storage_size(d) != (hsize_t)bytes ||
        bytes > s->size || (int64_t)off > s->size - bytes)
        return -1;
    return (int64_t)off;
}

/* The direct read: the dataset's bytes mapped from the page cache (no copy into a buffer
 * of ours: this is most of what makes `bgfm export` as fast as cp, docs/export.md) and
 * passed on in pieces of CKPT_HASH_BLOCK bytes, each hashed and handed to fn while it is
 * in the cache. The hash pass faults the pages in as it reads them (the kernel maps 16
 * cached pages per fault): 1-2 ms less for export's 58.8 MB than MAP_POPULATE, which
 * walks them all once more beforehand (docs/export.md, "Cost"). *mapped = 0 when the
 * mapping failed (the caller reads through HDF5). The
 * file must not shrink meanwhile (a checkpoint is never rewritten in place: a new one is
 * renamed over it, which leaves this open file as it was). */
static int stream_mapped(const ckpt_stream *s, const model_tensor *t, int64_t off, int64_t bytes,
                         block_hash *h, ckpt_piece_fn fn, void *arg, int *mapped, bgfm_err *e) {
    long pg = sysconf(_SC_PAGESIZE);
    int64_t base = pg > 0 ? off / pg * pg : off, skip = off - base;
    void *map = mmap(NULL, (size_t)(bytes + skip), PROT_READ, MAP_PRIVATE, s->fd, (off_t)base);
    *mapped = map != MAP_FAILED;
    if (!*mapped) return 0;
    const unsigned char *p = (const unsigned char *)map + skip;
    int rc = 0;
    for (int64_t b = 0; b < bytes && !rc; b += CKPT_HASH_BLOCK) {
        int64_t n = bytes - b < CKPT_HASH_BLOCK ? bytes - b : CKPT_HASH_BLOCK;
        if (h) block_feed(h, p + b, n);
        rc = fn(arg, t, b / (int64_t)sizeof(float), n / (int64_t)sizeof(float),
                (const float *)(const void *)(p + b), e);
    }
    munmap(map, (size_t)(bytes + skip));
    return rc;
}

/* Tensor t: read straight from the file (stream_mapped) when its layout allows, else
 * through buf (room for `cap` floats, at least one row) in pieces of whole rows. One open
 * of the dataset: its shape checked as tensor_check does. */
static int stream_tensor(const ckpt_stream *s, const model_tensor *t, float *buf, int64_t cap,
                         block_hash *h, ckpt_piece_fn fn, void *arg, bgfm_err *e) {
    char name[256];
    snprintf(name, sizeof name, "/model/%s", t->name);
    hid_t d = H5Dopen2(s->f, name, H5P_DEFAULT);
    if (d < 0)
        return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s is missing; is it a bgfm checkpoint?",
                         s->path, name);
    hid_t fs = H5Dget_space(d);
    hsize_t dims[8] = {0};
    int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
    int rc = rank < 0 || rank > 8 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0
                 ? bgfm_fail(e, BGFM_EDATA, "%s: cannot read the shape of tensor %s", s->path, name)
                 : 0;
    if (!rc && (rank != (t->cols ? 2 : 1) || (int64_t)dims[0] != t->rows ||
                (t->cols && (int64_t)dims[1] != t->cols)))
        rc = bgfm_fail(e, BGFM_EDATA, "%s: tensor %s has the wrong shape for the model "
                       "described by its attributes", s->path, name);
    int64_t row = t->cols ? t->cols : 1, step = cap / row, bytes = t->rows * row * 4;
    int64_t off = rc ? -1 : direct_offset(s, d, bytes);
    int mapped = 0;
    if (off >= 0) rc = stream_mapped(s, t, off, bytes, h, fn, arg, &mapped, e);
    for (int64_t r0 = 0; !mapped && !rc && r0 < t->rows; r0 += step) {
        int64_t nr = t->rows - r0 < step ? t->rows - r0 : step;
        rc = read_rows(d, fs, t, r0, nr, buf, name, s->path, e);
        if (!rc && h) block_feed(h, (const unsigned char *)buf, nr * row * (int64_t)sizeof *buf);
        if (!rc) rc = fn(arg, t, r0 * row, nr * row, buf, e);
    }
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

int ckpt_stream_read(ckpt_stream *s, const model *m, ckpt_piece_fn fn, void *arg, bgfm_err *e) {
    int64_t cap = CKPT_HASH_BLOCK / (int64_t)sizeof(float); /* floats per piece */
    for (int i = 0; i < m->n_tensors; i++)
        if (m->t[i].cols > cap) cap = m->t[i].cols;
    int sum = h5io_attr_exists(s->f, NULL, "sha256");
    block_hash h;
    memset(&h, 0, sizeof h);
    h.version = (int)s->version;
    int64_t nb = digest_blocks(m, NULL, 0, 1, h.version, NULL);
    float *buf = bgfm_malloc(e, (size_t)cap * sizeof *buf, "checkpoint read buffer");
    if (buf && sum) h.dig = bgfm_malloc(e, (size_t)nb * dig_size(h.version), "checkpoint digests");
    int rc = !buf || (sum && !h.dig) ? BGFM_ENOMEM : 0;
    for (int i = 0; i < m->n_tensors && !rc; i++) /* layout order: the bytes of m->w */
        rc = stream_tensor(s, &m->t[i], buf, cap, sum ? &h : NULL, fn, arg, e);
    if (!rc && sum) {
        char hm[65], ha[65];
        if (h.fill > 0) block_end(&h);
        BGFM_ASSERT(h.k == nb);
        digest_final(m, NULL, NULL, h.version, h.dig, hm, ha);
        rc = digest_compare(s->f, s->path, "sha256_model", hm, e);
    }
    free(buf);
    free(h.dig);
    return rc;
}

int ckpt_stream_close(ckpt_stream *s, bgfm_err *e) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    return h5io_close(&s->f, s->path, e);
}
