/* test_export.c: the safetensors export (stages/pretrain/export.c): the bgfm <-> PyTorch
 * name map (inverse both ways, unique, the documented examples, bad names refused),
 * write + strict read bit-exact for the encoder and the full model (an encoder-only file
 * leaves the decoder at the random init), and hostile files refused with BGFM_EDATA and
 * a message naming the file and the tensor; pop_site (how the head was fitted) out and
 * back, a word that names no fit refused. No MPI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bgfm/export.h"
#include "bgfm/pop.h"
#include "tmpdir.h"

static void cfg_make(model_cfg *c, int readout, int norm) {
    memset(c, 0, sizeof *c);
    c->H = 8, c->nh = 2, c->F = 12, c->k = 3, c->L = 3, c->Ld = 2, c->P = 4, c->N_max = 7;
    c->readout = readout, c->rdim = 2, c->norm = norm;
    c->n_atlases = 3;
    const char *names[] = {"aal116", "ho-48", "x_1"};
    int nodes[] = {5, 7, 2};
    for (int a = 0; a < 3; a++) {
        snprintf(c->atlas[a], sizeof c->atlas[a], "%s", names[a]);
        c->atlas_nodes[a] = nodes[a];
    }
}

static void model_make(model *m, int readout, int norm) {
    model_cfg c;
    cfg_make(&c, readout, norm);
    bgfm_err e = {0};
    assert_int_equal(model_init(m, &c, &e), 0);
    model_init_params(m, 5);
    for (int64_t i = 0; i < m->n_params; i++) m->w[i] += 1e-3f * (float)(i % 97); /* not init */
}

static void test_names(void **state) {
    (void)state;
    const char *ex[][2] = {{"in/W", "input.weight"},
                           {"embed/token", "embed.token.weight"},
                           {"embed/node/ho-48", "embed.node.ho-48.weight"},
                           {"enc/0/attn/Wq", "enc.0.attn.q.weight"},
                           {"enc/2/ffn/b1", "enc.2.ffn.fc1.bias"},
                           {"enc/1/ln_g/gamma", "enc.1.ln_g.weight"},
                           {"readout/Wc", "readout.proj.weight"},
                           {"readout/W/aal116", "readout.atlas.aal116.weight"},
                           {"readout/b", "readout.bias"},
                           {"dec/1/ln_2/beta", "dec.1.ln_2.bias"},
                           {"dec/mask_token", "dec.mask_token"},
                           {"proj/W2", "proj.fc2.weight"},
                           {"norm/x_1/std", "norm.x_1.std"}};
    char out[160], back[160];
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        assert_int_equal(export_torch_name(ex[i][0], out, sizeof out), 0);
        assert_string_equal(out, ex[i][1]);
        assert_int_equal(export_bgfm_name(ex[i][1], back, sizeof back), 0);
        assert_string_equal(back, ex[i][0]);
    }
    for (int ro = 0; ro < 2; ro++)
        for (int nm = 0; nm < 2; nm++) { /* every tensor of these models: inverse and unique */
            model m;
            model_make(&m, ro, nm);
            char (*tn)[160] = calloc((size_t)m.n_tensors, sizeof *tn);
            assert_non_null(tn);
            for (int i = 0; i < m.n_tensors; i++) {
                assert_int_equal(export_torch_name(m.t[i].name, tn[i], sizeof tn[i]), 0);
                assert_int_equal(export_bgfm_name(tn[i], back, sizeof back), 0);
                assert_string_equal(back, m.t[i].name);
                for (int j = 0; j < i; j++) assert_string_not_equal(tn[i], tn[j]);
            }
            free(tn);
            model_free(&m);
        }
    const char *bad_torch[] = {"", "enc.01.gcn.weight", "enc.0.gcn.weight.x", "enc.0.gcn",
                               "embed.node.a/b.weight", "readout.atlas..weight", "foo",
                               "enc/0/gcn/W", "enc.1000.gcn.weight", "embed.node.a.b.weight",
                               "norm.x.var", "input.weight."};
    for (size_t i = 0; i < sizeof bad_torch / sizeof bad_torch[0]; i++)
        assert_int_equal(export_bgfm_name(bad_torch[i], out, sizeof out), -1);
    assert_int_equal(export_torch_name("enc.0.gcn.weight", out, sizeof out), -1);
    assert_int_equal(export_torch_name("embed/node/a.b", out, sizeof out), -1);
    assert_int_equal(export_torch_name("in/W", out, 5), -1); /* does not fit */
    assert_true(export_is_encoder("norm/a/mean") && export_is_encoder("readout/b"));
    assert_false(export_is_encoder("dec/re/W") || export_is_encoder("proj/b1"));
}

static void same_bits(const model *a, const model *b, int full) {
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const model_tensor *t = &a->t[i];
        if (!full && !export_is_encoder(t->name)) continue;
        int64_t n = t->rows * (t->cols ? t->cols : 1);
        assert_memory_equal(a->w + t->off, b->w + b->t[i].off, (size_t)n * sizeof(float));
    }
}

static void test_roundtrip(void **state) {
    (void)state;
    for (int ro = 0; ro < 2; ro++) {
        model m, r, fresh;
        model_make(&m, ro, 1);
        export_corpus cp = {.config = "stage: pre\n\"quoted\" \\ tab\t", .protocol = "strict",
                            .n_graphs = 12, .step = 3, .epoch = 1, .seed = 9};
        bgfm_err e = {0};
        int full = -1;
        assert_int_equal(export_write(tpath("f.safetensors"), &m, &cp, 1, &e), 0);
        assert_int_equal(export_load(tpath("f.safetensors"), 77, &r, &full, &e), 0);
        assert_int_equal(full, 1);
        assert_int_equal(r.cfg.readout, ro);
        same_bits(&m, &r, 1);
        model_free(&r);
        assert_int_equal(export_write(tpath("e.safetensors"), &m, &cp, 0, &e), 0);
        assert_int_equal(export_load(tpath("e.safetensors"), 77, &r, &full, &e), 0);
        assert_int_equal(full, 0);
        same_bits(&m, &r, 0);
        /* the decoder and head of an encoder-only file: model_init_params(seed) */
        assert_int_equal(model_init(&fresh, &r.cfg, &e), 0);
        model_init_params(&fresh, 77);
        for (int i = 0; i < r.n_tensors; i++)
            if (!export_is_encoder(r.t[i].name)) {
                int64_t n = r.t[i].rows * (r.t[i].cols ? r.t[i].cols : 1);
                assert_memory_equal(r.w + r.t[i].off, fresh.w + fresh.t[i].off, (size_t)n * 4);
            }
        model_free(&fresh);
        model_free(&r);
        model_free(&m);
    }
}

/* ---- hostile files: a valid file, edited ---- */
static unsigned char *file_read(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void file_write(const char *p, const void *b, size_t n) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Copy src to dst with the first `from` of the header replaced by `to` (header length
 * and padding recomputed), or with `cut` bytes dropped from the end, or with the length
 * field set to `len` (when != 0). */
static void edit(const char *src, const char *dst, const char *from, const char *to, size_t cut,
                 uint64_t len) {
    size_t n = 0;
    unsigned char *b = file_read(src, &n);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | b[i];
    size_t data = n - 8 - (size_t)h;
    char *hdr = calloc(h + strlen(to ? to : "") + 16, 1);
    assert_non_null(hdr);
    memcpy(hdr, b + 8, h);
    while (h > 0 && hdr[h - 1] == ' ') hdr[--h] = '\0';
    if (from) {
        char *at = strstr(hdr, from);
        assert_non_null(at);
        size_t lf = strlen(from), lt = strlen(to);
        memmove(at + lt, at + lf, strlen(at + lf) + 1);
        memcpy(at, to, lt);
        h = strlen(hdr);
    }
    while (h % 8) hdr[h++] = ' ';
    size_t total = 8 + h + data - cut;
    unsigned char *o = malloc(total + 8);
    assert_non_null(o);
    uint64_t L = len ? len : h;
    for (int i = 0; i < 8; i++) o[i] = (unsigned char)(L >> (8 * i));
    memcpy(o + 8, hdr, h);
    memcpy(o + 8 + h, b + n - data, data - cut);
    file_write(dst, o, total);
    free(o);
    free(hdr);
    free(b);
}

static void refused(const char *path, const char *want1, const char *want2) {
    model m;
    bgfm_err e = {0};
    int rc = export_load(path, 1, &m, NULL, &e);
    if (rc != BGFM_EDATA || !strstr(e.msg, path) || !strstr(e.msg, want1) ||
        (want2 && !strstr(e.msg, want2)))
        fail_msg("%s: rc %d, message '%s' (wanted '%s' and '%s')", path, rc, e.msg, want1,
                 want2 ? want2 : "");
}

static void test_hostile(void **state) {
    (void)state;
    model m;
    model_make(&m, 1, 1);
    export_corpus cp = {.n_graphs = -1};
    bgfm_err e = {0};
    const char *ok = tpath("ok.safetensors"), *bad = tpath("bad.safetensors");
    assert_int_equal(export_write(ok, &m, &cp, 0, &e), 0);
    model_free(&m);
    edit(ok, bad, NULL, NULL, 1, 0);
    refused(bad, "truncated", "readout.proj.weight"); /* the last tensor's data */
    edit(ok, bad, NULL, NULL, 0, 1u << 30);
    refused(bad, "header length 1073741824 is larger than the file", NULL);
    edit(ok, bad, "{\"__metadata__\"", "[\"__metadata__\"", 0, 0);
    refused(bad, "not a JSON object", NULL);
    edit(ok, bad, "\"input.bias\":{\"dtype\":\"F32\"", "\"input.bias\":{\"dtype\":\"F16\"", 0, 0);
    refused(bad, "input.bias", "dtype F16");
    edit(ok, bad, "\"shape\":[8],\"data_offsets\":[", "\"shape\":[8],\"data_offsets\":[4,36],\"x\":[", 0, 0);
    refused(bad, "overlap", NULL);
    edit(ok, bad, "\"input.bias\"", "\"input.biass\"", 0, 0);
    refused(bad, "unexpected tensor input.biass", NULL);
    edit(ok, bad, "\"embed.token.weight\":{\"dtype\":\"F32\",\"shape\":[3,8]",
         "\"embed.token.weight\":{\"dtype\":\"F32\",\"shape\":[8,3]", 0, 0);
    refused(bad, "embed.token.weight has shape [8, 3]", "needs [3, 8]");
    edit(ok, bad, "\"contents\":\"encoder\"", "\"contents\":\"full\"", 0, 0);
    refused(bad, "dec.", "is missing");
    edit(ok, bad, "\"format_version\":\"1\"", "\"format_version\":\"2\"", 0, 0);
    refused(bad, "format_version 2 is newer", NULL);
    edit(ok, bad, "\"format\":\"bgfm-safetensors\"", "\"format\":\"pt\"", 0, 0);
    refused(bad, "format is pt, not bgfm-safetensors", NULL);
    const char plain[] = "\x38\0\0\0\0\0\0\0{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                         "\"data_offsets\":[0,4]}}  \0\0\0\0";
    file_write(bad, plain, sizeof plain - 1);
    refused(bad, "no __metadata__", NULL);
    edit(ok, bad, "\"H\":\"8\"", "\"H\":\"9\"", 0, 0);
    refused(bad, "hidden (9) must be a positive multiple of heads", NULL);
    edit(ok, bad, "\"input.bias\":{", "\"input.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"input.bias\":{", 0, 0);
    refused(bad, "input.bias appears twice", NULL);
    /* a NaN in the data */
    size_t n = 0;
    unsigned char *b = file_read(ok, &n);
    memcpy(b + n - 4, (const unsigned char[]){0, 0, 0xc0, 0x7f}, 4);
    file_write(bad, b, n);
    free(b);
    refused(bad, "NaN or Inf", NULL);
    file_write(bad, "\x02\0\0\0", 4);
    refused(bad, "too short", NULL);
    model r;
    assert_int_equal(export_load(tpath("absent.safetensors"), 1, &r, NULL, &e), BGFM_EIO);
    assert_non_null(strstr(e.msg, "absent.safetensors"));
}

/* pop_site (how the population head was fitted) goes out as metadata and comes back into
 * the model's provenance; a word that names no fit is refused. */
static void test_pop_site(void **state) {
    (void)state;
    model_cfg c;
    cfg_make(&c, 1, 1);
    c.pop_rank = 2, c.pop_site_fit = 1 + POP_SITE_HARMONISE;
    model m, r;
    bgfm_err e = {0};
    assert_int_equal(model_init(&m, &c, &e), 0);
    model_init_params(&m, 5);
    export_corpus cp = {.n_graphs = -1};
    const char *ok = tpath("pop.safetensors"), *bad = tpath("pop_bad.safetensors");
    assert_int_equal(export_write(ok, &m, &cp, 0, &e), 0);
    assert_int_equal(export_load(ok, 1, &r, NULL, &e), 0);
    assert_int_equal(r.cfg.pop_rank, 2);
    assert_int_equal(r.cfg.pop_site_fit, 1 + POP_SITE_HARMONISE);
    model_free(&r);
    edit(ok, bad, "\"pop_site\":\"harmonise\"", "\"pop_site\":\"auto\"", 0, 0);
    refused(bad, "pop_site is auto", "how the head was fitted");
    edit(ok, bad, "\"pop_site\":\"harmonise\"", "\"pop_site_x\":\"harmonise\"", 0, 0);
    assert_int_equal(export_load(bad, 1, &r, NULL, &e), 0); /* an older file: no provenance */
    assert_int_equal(r.cfg.pop_site_fit, 0);
    model_free(&r);
    m.cfg.pop_site_fit = 0; /* a model that does not know how its head was fitted: no key */
    assert_int_equal(export_write(ok, &m, &cp, 0, &e), 0);
    size_t n = 0;
    unsigned char *b = file_read(ok, &n);
    assert_null(memmem(b, n, "pop_site", 8));
    free(b);
    model_free(&m);
}

static int setup(void **state) {
    (void)state;
    return tmpdir_make("export");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_names),
                                       cmocka_unit_test(test_roundtrip),
                                       cmocka_unit_test(test_hostile),
                                       cmocka_unit_test(test_pop_site)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
