/* graphs_inspect.c: `bgfm inspect` of a graph store (graphs.h): per atlas the graph
 * count, N, mean edge density, mean flagged fraction and label balance, as text or JSON,
 * read through the store's public accessors.
 * Not the store's reader or writer (graphs.c). */
#include <stdlib.h>
#include <string.h>

#include "bgfm/graphs.h"
#include "bgfm/json.h"

typedef struct label_count {
    int64_t label, n;
} label_count;

int graphs_inspect(const char *path, int json, FILE *out, bgfm_err *e) {
    graphs_store *s = NULL;
    int rc = graphs_open(path, &s, e);
    if (rc) return rc;
    int A = graphs_n_atlases(s);
    int64_t *cnt = bgfm_calloc(e, (size_t)A + 1, sizeof(int64_t), "inspect");
    double *dens = bgfm_calloc(e, (size_t)A + 1, sizeof(double), "inspect");
    double *flag = bgfm_calloc(e, (size_t)A + 1, sizeof(double), "inspect");
    label_count *lab = bgfm_calloc(e, (size_t)(graphs_count(s) ? graphs_count(s) : 1), sizeof(label_count), "inspect");
    int *nlab = bgfm_calloc(e, (size_t)A + 1, sizeof(int), "inspect");
    int maxn = 1;
    for (int a = 0; a < A; a++)
        if (graphs_atlas_nodes(s, a) > maxn) maxn = graphs_atlas_nodes(s, a);
    uint8_t *adj = bgfm_malloc(e, (size_t)maxn * (size_t)maxn, "inspect");
    uint8_t *fl = bgfm_malloc(e, (size_t)maxn, "inspect");
    if (!cnt || !dens || !flag || !lab || !nlab || !adj || !fl) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    /* label counts per atlas: lab holds A lists back to back (sizes nlab[a]) */
    for (int a = 0; a < A && !rc; a++) {
        label_count *L = lab;
        for (int b = 0; b < a; b++) L += nlab[b];
        int64_t N = graphs_atlas_nodes(s, a);
        for (int64_t g = 0; g < graphs_count(s) && !rc; g++) {
            if (graphs_get_meta(s, g)->atlas != a) continue;
            cnt[a]++;
            rc = graphs_read(s, &g, 1, NULL, adj, NULL, e);
            if (!rc) rc = graphs_read_flagged(s, &g, 1, fl, e);
            if (rc) break;
            int64_t edges = 0, nf = 0;
            for (int64_t i = 0; i < N * N; i++) edges += adj[i] != 0;
            for (int64_t i = 0; i < N; i++) nf += fl[i] != 0;
            dens[a] += N > 1 ? (double)edges / (double)(N * (N - 1)) : 0.0;
            flag[a] += N > 0 ? (double)nf / (double)N : 0.0;
            int q = 0;
            while (q < nlab[a] && L[q].label != graphs_get_meta(s, g)->label) q++;
            if (q == nlab[a]) {
                /* insert keeping labels ascending */
                int pos = 0;
                while (pos < nlab[a] && L[pos].label < graphs_get_meta(s, g)->label) pos++;
                memmove(L + pos + 1, L + pos, sizeof *L * (size_t)(nlab[a] - pos));
                L[pos].label = graphs_get_meta(s, g)->label;
                L[pos].n = 0;
                nlab[a]++;
                q = pos;
            }
            L[q].n++;
        }
        if (cnt[a]) {
            dens[a] /= (double)cnt[a];
            flag[a] /= (double)cnt[a];
        }
    }
    if (rc) goto done;
    int is_index = graphs_is_index(s);
    if (json) {
        fprintf(out, "{\"path\": ");
        json_write_str(out, graphs_file(s));
        fprintf(out, ", \"format\": ");
        json_write_str(out, is_index ? "bgfm-graphs-index" : "bgfm-graphs-shard");
        fprintf(out, ", \"n_graphs\": %lld, \"n_shards\": %d, \"measure\": ", (long long)graphs_count(s),
                graphs_n_shards(s));
        json_write_str(out, graphs_measure(s));
        fprintf(out, ", \"fisher_z\": %s, \"adjacency\": ", graphs_fisher_z(s) ? "true" : "false");
        json_write_str(out, graphs_adjacency(s));
        fprintf(out, ", \"adjacency_value\": ");
        json_write_num(out, graphs_adjacency_value(s));
        fprintf(out, ", \"rwse_steps\": %d, \"window_length\": %lld, \"atlases\": [", graphs_rwse_steps(s),
                (long long)graphs_window_length(s));
        label_count *L = lab;
        for (int a = 0; a < A; a++) {
            fprintf(out, "%s{\"name\": ", a ? ", " : "");
            json_write_str(out, graphs_atlas_name(s, a));
            fprintf(out, ", \"n_graphs\": %lld, \"n_nodes\": %d, \"density_mean\": ",
                    (long long)cnt[a], graphs_atlas_nodes(s, a));
            json_write_num(out, dens[a]);
            fprintf(out, ", \"flagged_mean\": ");
            json_write_num(out, flag[a]);
            fprintf(out, ", \"labels\": {");
            for (int q = 0; q < nlab[a]; q++)
                fprintf(out, "%s\"%lld\": %lld", q ? ", " : "", (long long)L[q].label,
                        (long long)L[q].n);
            fprintf(out, "}}");
            L += nlab[a];
        }
        fprintf(out, "]}\n");
    } else {
        fprintf(out, "%s: bgfm graph %s, %lld graphs in %d shard(s)\n", graphs_file(s),
                is_index ? "index" : "shard", (long long)graphs_count(s), graphs_n_shards(s));
        fprintf(out, "  measure %s, fisher_z %s, adjacency %s %g, rwse_steps %d, windows %s",
                graphs_measure(s), graphs_fisher_z(s) ? "yes" : "no", graphs_adjacency(s), graphs_adjacency_value(s), graphs_rwse_steps(s),
                graphs_window_length(s) ? "" : "none");
        if (graphs_window_length(s)) fprintf(out, "%lld TRs", (long long)graphs_window_length(s));
        fprintf(out, "\n");
        label_count *L = lab;
        for (int a = 0; a < A; a++) {
            fprintf(out, "  atlas %-16s %6lld graphs  N=%-4d density %.4f  flagged %.4f  labels",
                    graphs_atlas_name(s, a), (long long)cnt[a], graphs_atlas_nodes(s, a), dens[a], flag[a]);
            for (int q = 0; q < nlab[a]; q++)
                fprintf(out, " %lld:%lld", (long long)L[q].label, (long long)L[q].n);
            fprintf(out, "\n");
            L += nlab[a];
        }
    }
done:
    free(cnt);
    free(dens);
    free(flag);
    free(lab);
    free(nlab);
    free(adj);
    free(fl);
    graphs_close(&s);
    return rc;
}
