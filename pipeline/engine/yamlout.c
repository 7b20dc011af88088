/* yamlout.c: the resolved pipeline and stage parameters written back as canonical
 * YAML (what `bgfm validate` prints and the engine hashes into manifests).
 * Not the parser (config.c, yamltree.c) and not the YAML reference (doc.c). */
#include "bgfm/yamlout.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void yaml_real_text(double x, char *buf, size_t n) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* Plain only when every YAML reader takes it as this same string (so no ':', no
 * leading digit, no YAML 1.1 bool/null word), else double-quoted with escapes. */
static void put_str(FILE *f, const char *s) {
    static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false",
                                        "null"};
    int plain = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_' ||
                s[0] == '/';
    for (const char *p = s; plain && *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("_./+-", ch)))
            plain = 0;
    }
    for (int i = 0; plain && i < 9; i++)
        if (!strcasecmp(s, words[i])) plain = 0;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void put_value(FILE *f, const bgfm_value *v) {
    char buf[64];
    switch (v->opt->type) {
    case BGFM_OPT_BOOL: fputs(v->b ? "true" : "false", f); break;
    case BGFM_OPT_INT:
        if (v->s)
            put_str(f, v->s); /* one of the option's words (config.h) */
        else
            fprintf(f, "%lld", (long long)v->i);
        break;
    case BGFM_OPT_REAL:
        yaml_real_text(v->r, buf, sizeof buf);
        fputs(buf, f);
        break;
    case BGFM_OPT_STR:
    case BGFM_OPT_ENUM: put_str(f, v->s); break;
    case BGFM_OPT_LIST:
        fputc('[', f);
        for (int i = 0; i < v->n_list; i++) {
            if (i) fputs(", ", f);
            fputc('"', f);
            for (const unsigned char *p = (const unsigned char *)v->list[i]; *p; p++) {
                if (*p == '"' || *p == '\\')
                    fprintf(f, "\\%c", *p);
                else
                    fputc(*p, f);
            }
            fputc('"', f);
        }
        fputc(']', f);
        break;
    }
}

/* Any set or defaulted value in the group of options starting with key[0..plen)? */
static int group_set(const bgfm_params *p, const char *prefix, size_t plen) {
    for (int i = 0; i < p->n; i++)
        if (p->v[i].state && (plen == 0 || (!strncmp(p->opts[i].key, prefix, plen) &&
                                             p->opts[i].key[plen] == '.')))
            return 1;
    return 0;
}

static void write_level(const bgfm_params *p, FILE *f, int indent, const char *prefix,
                        size_t plen) {
    for (int i = 0; i < p->n; i++) {
        const char *key = p->opts[i].key;
        if (plen && (strncmp(key, prefix, plen) || key[plen] != '.')) continue;
        const char *rest = plen ? key + plen + 1 : key;
        const char *dot = strchr(rest, '.');
        if (!dot) {
            if (!p->v[i].state) continue;
            fprintf(f, "%*s%s: ", indent, "", rest);
            put_value(f, &p->v[i]);
            fputc('\n', f);
            continue;
        }
        size_t glen = (size_t)(dot - key); /* the group "prefix.rest-up-to-dot" */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            if (!strncmp(p->opts[j].key, key, glen) && p->opts[j].key[glen] == '.') seen = 1;
        if (seen || !group_set(p, key, glen)) continue;
        fprintf(f, "%*s%.*s:\n", indent, "", (int)(dot - rest), rest);
        write_level(p, f, indent + 2, key, glen);
    }
}

int params_write(const bgfm_params *p, FILE *f, int indent) {
    write_level(p, f, indent, "", 0);
    return ferror(f) ? BGFM_EIO : 0;
}

/* One inputs.datasets entry, every value resolved (unset optional keys left out). */
static void write_dataset(FILE *f, const bgfm_dataset_cfg *d) {
    static const char *const roles[] = {"", "pretrain", "downstream", "both"};
    char buf[64];
    fputs("    - name: ", f);
    put_str(f, d->name);
    fputs("\n      bids: ", f);
    put_str(f, d->bids);
    fprintf(f, "\n      role: %s\n      participants: ", roles[d->role & 3]);
    put_str(f, d->participants);
    fputs("\n      label_column: ", f);
    put_str(f, d->label_column);
    fputc('\n', f);
    if (d->n_label_map) {
        fputs("      label_map: [", f);
        for (int k = 0; k < d->n_label_map; k++) {
            fputs(k ? ", " : "", f);
            put_str(f, d->label_map[k]);
        }
        fputs("]\n", f);
    }
    if (d->site_column) {
        fputs("      site_column: ", f);
        put_str(f, d->site_column);
        fputc('\n', f);
    }
    if (d->t_r > 0) {
        yaml_real_text(d->t_r, buf, sizeof buf);
        fprintf(f, "      t_r: %s\n", buf);
    }
    if (d->filter) {
        fputs("      filter: ", f);
        put_str(f, d->filter);
        fputc('\n', f);
    }
    for (int k = 0; k < BGFM_N_ENTITIES; k++)
        if (d->entity[k]) {
            fprintf(f, "      %s: ", bgfm_entity_name(k));
            put_str(f, d->entity[k]);
            fputc('\n', f);
        }
}

void config_write_resolved(const bgfm_pipeline *p, FILE *f) {
    fprintf(f, "# %s resolved by bgfm %s: every default filled in, paths absolute\n", p->file,
            BGFM_VERSION);
    fputs("name: ", f);
    put_str(f, p->name);
    fputs("\nworkdir: ", f);
    put_str(f, p->workdir);
    fprintf(f, "\nseed: %llu\non_error: %s\n", (unsigned long long)p->seed,
            p->on_error == BGFM_ON_ERROR_SKIP ? "skip" : "fail");
    if (p->max_memory_per_rank > 0)
        fprintf(f, "max_memory_per_rank: %lld\n", (long long)p->max_memory_per_rank);
    if (p->n_datasets > 0) {
        fputs("inputs:\n  label_column: ", f);
        put_str(f, p->label_column);
        if (p->subject_map) {
            fputs("\n  subject_map: ", f);
            put_str(f, p->subject_map);
        }
        fputs("\n  datasets:\n", f);
        for (int i = 0; i < p->n_datasets; i++) write_dataset(f, &p->datasets[i]);
    } else {
        fputs("inputs:\n  bids: ", f);
        put_str(f, p->bids);
        fputs("\n  label_column: ", f);
        put_str(f, p->label_column);
        fputs("\n  participants: ", f);
        put_str(f, p->participants);
        fputc('\n', f);
    }
    fputs("atlases:\n", f);
    for (int i = 0; i < p->n_atlases; i++) {
        fputs("  - name: ", f);
        put_str(f, p->atlases[i].name);
        fputs("\n    path: ", f);
        put_str(f, p->atlases[i].path);
        fputc('\n', f);
        if (p->atlases[i].labels) {
            fputs("    labels: ", f);
            put_str(f, p->atlases[i].labels);
            fputc('\n', f);
        }
    }
    fputs("stages:\n", f);
    for (int i = 0; i < p->n_stages; i++) {
        const bgfm_stage_cfg *s = &p->stages[i];
        fputs("  - name: ", f);
        put_str(f, s->name);
        fputs("\n    uses: ", f);
        put_str(f, s->uses);
        if (group_set(&s->with, "", 0)) {
            fputs("\n    with:\n", f);
            params_write(&s->with, f, 6);
        } else {
            fputs("\n    with: {}\n", f);
        }
        if (p->stage_slurm && group_set(&p->stage_slurm[i], "", 0)) {
            fputs("    slurm:\n", f);
            params_write(&p->stage_slurm[i], f, 6);
        }
    }
    fputs("slurm:\n", f);
    params_write(&p->slurm, f, 2);
}
