/* h5io.c: checked HDF5 helpers: MPI-IO files, collective row writes, attributes.
 * Not a file format: see docs/formats.md and the stage that owns each file. */
#include "bgfm/h5io.h"
#include "bgfm/strlist.h"

#include <string.h>

int h5io_fail(bgfm_err *e, int code, const char *what, const char *path) {
    char buf[1024];
    bgfm_h5_errstr(buf, sizeof buf);
    return bgfm_fail(e, code, "%s '%s' failed: %s", what, path ? path : "?", buf);
}

/* File access through MPI-IO on comm, or the POSIX driver for MPI_COMM_SELF. `writing`:
 * a file written on comm always goes through MPI-IO, also on one rank, because HDF5 lays
 * out a file written through the POSIX driver differently (a few bytes of the superblock
 * and file-space bookkeeping), and outputs must be byte-identical for any rank count. A
 * one-rank reader keeps the POSIX driver. */
static hid_t fapl_for(MPI_Comm comm, int writing, bgfm_err *e) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) {
        h5io_fail(e, BGFM_EIO, "H5Pcreate", "file access list");
        return -1;
    }
    int size = 1;
    if (comm != MPI_COMM_SELF && BGFM_MPI(e, MPI_Comm_size(comm, &size))) {
        H5Pclose(fapl);
        return -1;
    }
    if (comm != MPI_COMM_SELF && (size > 1 || writing)) {
        if (H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
            H5Pclose(fapl);
            h5io_fail(e, BGFM_EIO, "H5Pset_fapl_mpio", "file access list");
            return -1;
        }
        if (H5Pset_all_coll_metadata_ops(fapl, 1) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0) {
            H5Pclose(fapl);
            h5io_fail(e, BGFM_EIO, "setting collective metadata on", "file access list");
            return -1;
        }
    }
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        h5io_fail(e, BGFM_EIO, "setting format bounds on", "file access list");
        return -1;
    }
    return fapl;
}

hid_t h5io_create(MPI_Comm comm, const char *path, bgfm_err *e) {
    hid_t fapl = fapl_for(comm, 1, e);
    if (fapl < 0) return -1;
    /* no modification times anywhere (root group included): reruns are byte-identical */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0) {
        if (fcpl >= 0) H5Pclose(fcpl);
        H5Pclose(fapl);
        h5io_fail(e, BGFM_EIO, "creating the file creation list for", path);
        return -1;
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0) {
        char buf[1024];
        bgfm_h5_errstr(buf, sizeof buf);
        bgfm_fail(e, BGFM_EIO,
                  "cannot create HDF5 file '%s' (%s); check that the folder exists, is writable "
                  "and the disk is not full",
                  path, buf);
    }
    return f;
}

static hid_t open_mode(MPI_Comm comm, const char *path, unsigned mode, bgfm_err *e) {
    hid_t fapl = fapl_for(comm, mode == H5F_ACC_RDWR, e);
    if (fapl < 0) return -1;
    hid_t f = H5Fopen(path, mode, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        char buf[1024];
        bgfm_h5_errstr(buf, sizeof buf);
        bgfm_fail(e, BGFM_EIO, "cannot open HDF5 file '%s' (%s); is it a complete bgfm output?",
                  path, buf);
    }
    return f;
}

hid_t h5io_open(MPI_Comm comm, const char *path, bgfm_err *e) {
    return open_mode(comm, path, H5F_ACC_RDONLY, e);
}

hid_t h5io_open_rw(MPI_Comm comm, const char *path, bgfm_err *e) {
    return open_mode(comm, path, H5F_ACC_RDWR, e);
}

static int agree_on_file(hid_t obj, int rc, bgfm_err *e);

int h5io_close(hid_t *f, const char *path, bgfm_err *e) {
    if (*f < 0) return 0;
    /* A parallel file is flushed first and the ranks agree on the outcome: when the
     * flush failed anywhere (disk full), closing would leave the ranks in different
     * internal barriers of HDF5, so the file is abandoned instead (the process then
     * exits with code 4 without MPI_Finalize, see bgfm_ctx_finalize). */
    int frc = 0;
    if (H5Fflush(*f, H5F_SCOPE_GLOBAL) < 0) frc = h5io_fail(e, BGFM_EIO, "flushing HDF5 file (disk full?)", path);
    frc = agree_on_file(*f, frc, e);
    if (frc) {
        *f = -1;
        return frc;
    }
    herr_t rc = H5Fclose(*f);
    *f = -1;
    if (rc < 0)
        return h5io_fail(e, BGFM_EIO, "closing HDF5 file (disk full?)", path);
    return 0;
}

/* Link creation property list that creates missing intermediate groups. */
static hid_t lcpl_make(void) {
    hid_t l = H5Pcreate(H5P_LINK_CREATE);
    if (l >= 0 && H5Pset_create_intermediate_group(l, 1) < 0) {
        H5Pclose(l);
        return -1;
    }
    return l;
}

/* One group, without modification times. */
static int group_new(hid_t f, const char *path, bgfm_err *e) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    hid_t g = gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0
                  ? H5Gcreate2(f, path, H5P_DEFAULT, gcpl, H5P_DEFAULT)
                  : -1;
    if (gcpl >= 0) H5Pclose(gcpl);
    if (g < 0) return h5io_fail(e, BGFM_EIO, "creating group", path);
    H5Gclose(g);
    return 0;
}

/* Create the missing groups above `path`, without modification times, so that
 * rerunning a stage with the same inputs gives byte-identical files. */
static int make_parents(hid_t f, const char *path, bgfm_err *e) {
    char buf[1024];
    size_t n = strlen(path);
    if (n >= sizeof buf) return bgfm_fail(e, BGFM_EINTERNAL, "HDF5 path too long: %s", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/') continue;
        buf[i] = '\0';
        htri_t ex = H5Lexists(f, buf, H5P_DEFAULT);
        if (ex == 0) {
            int rc = group_new(f, buf, e);
            if (rc) return rc;
        } else if (ex < 0) {
            return h5io_fail(e, BGFM_EIO, "looking up group", buf);
        }
        buf[i] = '/';
    }
    return 0;
}

int h5io_group_create(hid_t f, const char *path, bgfm_err *e) {
    int rc = make_parents(f, path, e);
    return rc ? rc : group_new(f, path, e);
}

/* 1 when obj belongs to a file opened through MPI-IO. */
static int is_mpio(hid_t obj) {
    hid_t f = H5Iget_file_id(obj);
    if (f < 0) return 0;
    hid_t fapl = H5Fget_access_plist(f);
    H5Fclose(f);
    if (fapl < 0) return 0;
    int m = H5Pget_driver(fapl) == H5FD_MPIO;
    H5Pclose(fapl);
    return m;
}

hid_t h5io_dset_create(hid_t f, const char *path, hid_t type, int rank, const hsize_t *dims,
                       const hsize_t *chunk, int deflate, bgfm_err *e) {
    BGFM_ASSERT(rank >= 0 && rank <= 8);
    if (make_parents(f, path, e)) return -1;
    hsize_t maxd[8];
    for (int i = 0; i < rank; i++) maxd[i] = dims[i];
    if (chunk) maxd[0] = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t lcpl = lcpl_make();
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    if (space < 0 || lcpl < 0 || dcpl < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0) {
        h5io_fail(e, BGFM_EIO, "creating property lists for", path);
        goto done;
    }
    if (chunk) {
        hsize_t ch[8];
        for (int i = 0; i < rank; i++) ch[i] = chunk[i] > 0 ? chunk[i] : 1;
        if (H5Pset_chunk(dcpl, rank, ch) < 0 ||
            (deflate > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)deflate) < 0))) {
            h5io_fail(e, BGFM_EIO, "setting chunking/compression for", path);
            goto done;
        }
    } else if (is_mpio(f)) {
        /* contiguous datasets are allocated at creation so collective writes of
         * zero-size selections work everywhere */
        if (H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0) {
            h5io_fail(e, BGFM_EIO, "setting early allocation for", path);
            goto done;
        }
    }
    d = H5Dcreate2(f, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0) h5io_fail(e, BGFM_EIO, "creating dataset", path);
done:
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    return d;
}

/* Transfer list: collective when the file is opened with MPI-IO. */
static hid_t dxpl_for(hid_t obj) {
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0) return -1;
    hid_t f = H5Iget_file_id(obj);
    if (f >= 0) {
        hid_t fapl = H5Fget_access_plist(f);
        if (fapl >= 0) {
            if (H5Pget_driver(fapl) == H5FD_MPIO) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
            H5Pclose(fapl);
        }
        H5Fclose(f);
    }
    return dxpl;
}

/* Collective files: agree on rc across the file's communicator (the first failing
 * rank's message reaches every rank). Independent files: rc as it is. */
static int agree_on_file(hid_t obj, int rc, bgfm_err *e) {
    hid_t f = H5Iget_file_id(obj);
    if (f < 0) return rc;
    hid_t fapl = H5Fget_access_plist(f);
    H5Fclose(f);
    if (fapl < 0) return rc;
    if (H5Pget_driver(fapl) == H5FD_MPIO) {
        MPI_Comm comm = MPI_COMM_NULL;
        MPI_Info info = MPI_INFO_NULL;
        if (H5Pget_fapl_mpio(fapl, &comm, &info) >= 0) {
            rc = bgfm_err_agree(comm, e, rc);
            int frc = BGFM_MPI(e, MPI_Comm_free(&comm));
            if (info != MPI_INFO_NULL && !frc) frc = BGFM_MPI(e, MPI_Info_free(&info));
            if (!rc) rc = frc;
        }
    }
    H5Pclose(fapl);
    return rc;
}

int h5io_dset_close(hid_t *d, int rc, const char *path, bgfm_err *e) {
    if (*d < 0) return rc;
    hid_t f = H5Iget_file_id(*d);
    int crc = H5Dclose(*d) < 0 ? h5io_fail(e, BGFM_EIO, "closing dataset", path) : 0;
    *d = -1;
    if (f < 0) return rc ? rc : crc;
    crc = agree_on_file(f, crc, e);
    H5Fclose(f);
    return rc ? rc : crc;
}

int h5io_write_rows(hid_t dset, hid_t memtype, int64_t row0, int64_t nrows, const void *buf,
                    bgfm_err *e) {
    int rc = 0;
    hid_t fspace = H5Dget_space(dset), mspace = -1, dxpl = dxpl_for(dset);
    if (fspace < 0 || dxpl < 0) {
        rc = h5io_fail(e, BGFM_EIO, "preparing a write to", "dataset");
        goto done;
    }
    hsize_t dims[8] = {0}, start[8] = {0}, count[8] = {0};
    int rank = H5Sget_simple_extent_dims(fspace, dims, NULL);
    if (rank < 1 || row0 < 0 || (hsize_t)(row0 + nrows) > dims[0]) {
        rc = bgfm_fail(e, BGFM_EINTERNAL, "row range [%lld, %lld) outside dataset of %llu rows",
                       (long long)row0, (long long)(row0 + nrows), (unsigned long long)dims[0]);
        goto done;
    }
    for (int i = 0; i < rank; i++) count[i] = dims[i];
    start[0] = (hsize_t)row0;
    count[0] = (hsize_t)nrows;
    if (nrows == 0) {
        /* a rank with no rows still takes part: empty selections on both sides */
        count[0] = 1;
        mspace = H5Sselect_none(fspace) < 0 ? -1 : H5Screate_simple(rank, count, NULL);
        if (mspace >= 0 && H5Sselect_none(mspace) < 0) {
            H5Sclose(mspace);
            mspace = -1;
        }
    } else {
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
            rc = h5io_fail(e, BGFM_EIO, "selecting rows of", "dataset");
            goto done;
        }
        mspace = H5Screate_simple(rank, count, NULL);
    }
    if (mspace < 0) {
        rc = h5io_fail(e, BGFM_EIO, "creating memory space for", "dataset");
        goto done;
    }
    if (H5Dwrite(dset, memtype, mspace, fspace, dxpl, nrows ? buf : NULL) < 0) {
        char name[256] = "dataset", file[768] = "?", where[1100];
        H5Iget_name(dset, name, sizeof name);
        H5Fget_name(dset, file, sizeof file);
        snprintf(where, sizeof where, "%s:%s", file, name);
        rc = h5io_fail(e, BGFM_EIO, "writing rows of (disk full?)", where);
    }
done:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (dxpl >= 0) H5Pclose(dxpl);
    /* A write that fails on one rank only (disk full) must not leave the others in
     * the next collective call: every rank of the file learns the outcome here. */
    return agree_on_file(dset, rc, e);
}

int h5io_write_block(hid_t f, const char *path, hid_t filetype, hid_t memtype, int rank,
                     const hsize_t *dims, int64_t row0, int64_t nrows, const void *buf,
                     bgfm_err *e) {
    hid_t d = h5io_dset_create(f, path, filetype, rank, dims, NULL, 0, e);
    int rc = d < 0 ? (e->code ? e->code : BGFM_EIO) : 0;
    if (!rc) rc = h5io_write_rows(d, memtype, row0, nrows, buf, e);
    return h5io_dset_close(&d, rc, path, e);
}

int h5io_write_small(hid_t f, const char *path, hid_t filetype, hid_t memtype, int rank,
                     const hsize_t *dims, const void *buf, int writer, bgfm_err *e) {
    hid_t d = h5io_dset_create(f, path, filetype, rank, dims, NULL, 0, e);
    if (d < 0) return e->code ? e->code : BGFM_EIO;
    int me = 0, qrc = 0;
    hid_t fapl = H5Fget_access_plist(f);
    if (fapl >= 0) {
        if (H5Pget_driver(fapl) == H5FD_MPIO) {
            MPI_Comm comm;
            MPI_Info info;
            if (H5Pget_fapl_mpio(fapl, &comm, &info) >= 0) {
                qrc = BGFM_MPI(e, MPI_Comm_rank(comm, &me));
                if (!qrc) qrc = BGFM_MPI(e, MPI_Comm_free(&comm));
                if (!qrc && info != MPI_INFO_NULL) qrc = BGFM_MPI(e, MPI_Info_free(&info));
            }
        }
        H5Pclose(fapl);
    }
    int64_t rows = rank > 0 ? (int64_t)dims[0] : 1;
    int rc = 0;
    if (rank == 0) {
        /* scalar dataset: independent write from the writer only */
        if (me == writer && H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = h5io_fail(e, BGFM_EIO, "writing", path);
    } else {
        rc = h5io_write_rows(d, memtype, 0, me == writer ? rows : 0, buf, e);
    }
    if (H5Dclose(d) < 0 && !rc) rc = h5io_fail(e, BGFM_EIO, "closing", path);
    return rc ? rc : qrc;
}

int h5io_write_strings(hid_t f, const char *path, const char *const *s, int64_t n, int writer,
                       bgfm_err *e) {
    /* Every rank must agree on the type: the caller passes the same strings on all
     * ranks (metadata), so the longest length is the same everywhere. */
    size_t len = 1;
    for (int64_t i = 0; i < n; i++) {
        size_t l = strlen(s[i] ? s[i] : "") + 1;
        if (l > len) len = l;
    }
    hid_t t = H5Tcopy(H5T_C_S1);
    int rc = t < 0 || H5Tset_size(t, len) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0
                 ? h5io_fail(e, BGFM_EIO, "making a string type for", path)
                 : 0;
    char *buf = rc ? NULL : bgfm_calloc(e, (size_t)(n ? n : 1), len, "string dataset");
    if (!rc && !buf) rc = BGFM_ENOMEM;
    /* a rank that failed here must not leave the others in the collective create */
    rc = agree_on_file(f, rc, e);
    for (int64_t i = 0; !rc && i < n; i++)
        if (s[i]) memcpy(buf + (size_t)i * len, s[i], strlen(s[i]));
    hsize_t dims[1] = {(hsize_t)n};
    if (!rc) rc = h5io_write_small(f, path, t, t, 1, dims, buf, writer, e);
    free(buf);
    if (t >= 0) H5Tclose(t);
    return rc;
}

int h5io_exists(hid_t f, const char *path) {
    char buf[1024];
    size_t n = strlen(path);
    if (n >= sizeof buf) return 0;
    memcpy(buf, path, n + 1);
    /* check every prefix: H5Lexists fails on a missing intermediate group */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            htri_t ok = H5Lexists(f, buf, H5P_DEFAULT);
            buf[i] = c;
            if (ok <= 0) return 0;
        }
    }
    return 1;
}

/* Can dataset d hold what its shape promises? The bytes it needs (elements x type size)
 * against what the file stores for it (deflate expands at most 1032:1): a damaged file
 * whose dimensions claim petabytes is a data error naming the dataset, before a caller
 * allocates by its shape (the NIfTI reader checks its header the same way). A zero
 * dimension counts as 1: callers allocate per row, so (3e9, 0) claims 3e9 rows. */
static int dset_possible(hid_t d, int r, const hsize_t *dims, const char *path, bgfm_err *e) {
    hid_t t = H5Dget_type(d);
    size_t ts = t >= 0 ? H5Tget_size(t) : 0;
    if (t >= 0) H5Tclose(t);
    uint64_t need = ts, stored = (uint64_t)H5Dget_storage_size(d);
    int over = ts == 0;
    for (int i = 0; i < r && !over; i++)
        over = __builtin_mul_overflow(need, (uint64_t)(dims[i] ? dims[i] : 1), &need);
    if (!over && need / 1032 <= stored + ((uint64_t)1 << 20)) return 0;
    char claim[40];
    if (over) snprintf(claim, sizeof claim, "more than 2^64");
    else snprintf(claim, sizeof claim, "%llu", (unsigned long long)need);
    return bgfm_fail(e, BGFM_EDATA, "dataset '%s' claims %s bytes of values, more than the %llu "
                     "bytes the file stores for it could hold; the file is damaged", path, claim,
                     (unsigned long long)stored);
}

/* Open dataset `path` (*d, to be closed by the caller on success) and read its shape,
 * checked as possible for its storage (dset_possible). */
static int open_dims(hid_t f, const char *path, hid_t *d, int *rank, hsize_t dims[8],
                     bgfm_err *e) {
    if (!h5io_exists(f, path))
        return bgfm_fail(e, BGFM_EDATA, "dataset '%s' is missing", path);
    *d = H5Dopen2(f, path, H5P_DEFAULT);
    if (*d < 0) return h5io_fail(e, BGFM_EDATA, "opening dataset", path);
    hid_t sp = H5Dget_space(*d);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int rc = r < 0 || r > 8 ? bgfm_fail(e, BGFM_EDATA, "dataset '%s' has an unsupported shape",
                                        path)
                            : 0;
    if (!rc && H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        rc = h5io_fail(e, BGFM_EDATA, "reading the shape of dataset", path);
    if (!rc) {
        *rank = r;
        rc = dset_possible(*d, r, dims, path, e);
    }
    if (sp >= 0) H5Sclose(sp);
    if (rc) H5Dclose(*d);
    return rc;
}

int h5io_dims(hid_t f, const char *path, int *rank, hsize_t dims[8], bgfm_err *e) {
    hid_t d;
    int rc = open_dims(f, path, &d, rank, dims, e);
    if (!rc) H5Dclose(d);
    return rc;
}

/* "'FILE': " naming the file that holds obj (empty when HDF5 cannot say). */
static void file_prefix(hid_t obj, char *out, size_t cap) {
    char name[512];
    ssize_t n = H5Fget_name(obj, name, sizeof name);
    if (n > 0 && (size_t)n < sizeof name) snprintf(out, cap, "'%s': ", name);
    else if (cap) out[0] = 0;
}

int h5io_read_all(hid_t f, const char *path, hid_t memtype, int64_t n, void *buf, bgfm_err *e) {
    int rank = 0;
    hsize_t dims[8] = {0};
    hid_t d;
    if (open_dims(f, path, &d, &rank, dims, e)) return e->code;
    uint64_t have = 1;
    for (int i = 0; i < rank; i++) have *= dims[i];
    int rc = 0;
    if (n < 0 || have != (uint64_t)n) {
        char where[540];
        file_prefix(f, where, sizeof where);
        rc = bgfm_fail(e, BGFM_EDATA, "%sdataset '%s' holds %llu values, expected %lld; the "
                       "file is damaged or was written by another version or configuration: "
                       "write it again", where, path, (unsigned long long)have, (long long)n);
    } else if (n && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = h5io_fail(e, BGFM_EDATA, "reading dataset", path);
    }
    H5Dclose(d);
    return rc;
}

int h5io_read_rows(hid_t f, const char *path, hid_t memtype, int64_t row0, int64_t nrows,
                   void *buf, bgfm_err *e) {
    if (!h5io_exists(f, path))
        return bgfm_fail(e, BGFM_EDATA, "dataset '%s' is missing", path);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return h5io_fail(e, BGFM_EDATA, "opening dataset", path);
    int rc = 0;
    hid_t fs = H5Dget_space(d), ms = -1;
    hsize_t dims[8] = {0}, start[8] = {0}, count[8] = {0};
    int rank = fs >= 0 ? H5Sget_simple_extent_dims(fs, dims, NULL) : -1;
    if (rank < 1 || row0 < 0 || nrows < 0 || (hsize_t)(row0 + nrows) > dims[0]) {
        rc = bgfm_fail(e, BGFM_EDATA, "rows [%lld, %lld) are outside dataset '%s'",
                       (long long)row0, (long long)(row0 + nrows), path);
        goto done;
    }
    if (nrows == 0) goto done;
    for (int i = 0; i < rank; i++) count[i] = dims[i];
    start[0] = (hsize_t)row0;
    count[0] = (hsize_t)nrows;
    ms = H5Screate_simple(rank, count, NULL);
    if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = h5io_fail(e, BGFM_EDATA, "reading rows of", path);
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

int h5io_read_strings(hid_t f, const char *path, char ***out, int64_t *n, bgfm_err *e) {
    *out = NULL;
    *n = 0;
    if (!h5io_exists(f, path))
        return bgfm_fail(e, BGFM_EDATA, "dataset '%s' is missing", path);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return h5io_fail(e, BGFM_EDATA, "opening dataset", path);
    int rc = 0;
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
    char *buf = NULL;
    char **res = NULL;
    hsize_t dims[1] = {0};
    if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) > 0 ||
        H5Sget_simple_extent_ndims(sp) != 1) {
        rc = bgfm_fail(e, BGFM_EDATA, "dataset '%s' is not a 1-D fixed-length string array", path);
        goto done;
    }
    if (H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        rc = h5io_fail(e, BGFM_EDATA, "reading the shape of dataset", path);
        goto done;
    }
    if ((rc = dset_possible(d, 1, dims, path, e))) goto done;
    size_t len = H5Tget_size(ft);
    buf = bgfm_calloc(e, dims[0] ? dims[0] : 1, len, "strings");
    res = bgfm_calloc(e, dims[0] ? dims[0] : 1, sizeof *res, "strings");
    if (!buf || !res) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    if (dims[0] && H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = h5io_fail(e, BGFM_EDATA, "reading strings", path);
        goto done;
    }
    for (hsize_t i = 0; i < dims[0]; i++) {
        res[i] = bgfm_calloc(e, len + 1, 1, "a string");
        if (!res[i]) {
            strlist_free(res, (int64_t)i);
            res = NULL;
            rc = BGFM_ENOMEM;
            goto done;
        }
        memcpy(res[i], buf + i * len, len);
    }
    *out = res;
    *n = (int64_t)dims[0];
    res = NULL;
done:
    free(res);
    free(buf);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

/* --- attributes ---------------------------------------------------------- */

static int attr_write(hid_t obj, const char *path, const char *name, hid_t type, hid_t space,
                      const void *buf, bgfm_err *e) {
    const char *p = (path && *path) ? path : ".";
    if (H5Aexists_by_name(obj, p, name, H5P_DEFAULT) > 0 &&
        H5Adelete_by_name(obj, p, name, H5P_DEFAULT) < 0)
        return h5io_fail(e, BGFM_EIO, "replacing attribute", name);
    hid_t a = H5Acreate_by_name(obj, p, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return h5io_fail(e, BGFM_EIO, "creating attribute", name);
    int rc = 0;
    if (H5Awrite(a, type, buf) < 0) rc = h5io_fail(e, BGFM_EIO, "writing attribute", name);
    if (H5Aclose(a) < 0 && !rc) rc = h5io_fail(e, BGFM_EIO, "closing attribute", name);
    return rc;
}

int h5io_attr_set_str(hid_t obj, const char *path, const char *name, const char *val,
                      bgfm_err *e) {
    hid_t t = H5Tcopy(H5T_C_S1);
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc;
    if (t < 0 || sp < 0 || H5Tset_size(t, strlen(val) + 1) < 0 ||
        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)
        rc = h5io_fail(e, BGFM_EIO, "making string attribute", name);
    else
        rc = attr_write(obj, path, name, t, sp, val, e);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

static int attr_set_num(hid_t obj, const char *path, const char *name, hid_t type,
                        const void *v, int n, bgfm_err *e) {
    hsize_t d[1] = {(hsize_t)n};
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, d, NULL);
    if (sp < 0) return h5io_fail(e, BGFM_EIO, "making attribute space", name);
    int rc = attr_write(obj, path, name, type, sp, v, e);
    H5Sclose(sp);
    return rc;
}

int h5io_attr_set_i64(hid_t obj, const char *path, const char *name, const int64_t *v, int n,
                      bgfm_err *e) {
    return attr_set_num(obj, path, name, H5T_NATIVE_INT64, v, n, e);
}

int h5io_attr_set_f64(hid_t obj, const char *path, const char *name, const double *v, int n,
                      bgfm_err *e) {
    return attr_set_num(obj, path, name, H5T_NATIVE_DOUBLE, v, n, e);
}

int h5io_attr_exists(hid_t obj, const char *path, const char *name) {
    const char *p = (path && *path) ? path : ".";
    if (strcmp(p, ".") && !h5io_exists(obj, p)) return 0;
    return H5Aexists_by_name(obj, p, name, H5P_DEFAULT) > 0;
}

int h5io_root_format(hid_t f, char **fmt, bgfm_err *e) {
    *fmt = NULL;
    return h5io_attr_exists(f, ".", "format") ? h5io_attr_get_str(f, ".", "format", fmt, e) : 0;
}

static hid_t attr_open(hid_t obj, const char *path, const char *name, bgfm_err *e) {
    const char *p = (path && *path) ? path : ".";
    if (!h5io_attr_exists(obj, p, name)) {
        bgfm_fail(e, BGFM_EDATA, "attribute '%s' is missing on '%s'", name, p);
        return -1;
    }
    hid_t a = H5Aopen_by_name(obj, p, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) h5io_fail(e, BGFM_EDATA, "opening attribute", name);
    return a;
}

int h5io_attr_get_str(hid_t obj, const char *path, const char *name, char **val, bgfm_err *e) {
    *val = NULL;
    hid_t a = attr_open(obj, path, name, e);
    if (a < 0) return e->code;
    int rc = 0;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t cnt = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        rc = bgfm_fail(e, BGFM_EDATA, "attribute '%s' is not a string", name);
    } else if (cnt != 1) { /* the read below fills exactly one string */
        rc = bgfm_fail(e, BGFM_EDATA, "attribute '%s' holds %lld strings, expected one", name,
                       (long long)cnt);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        /* the memory type takes the file's character set: HDF5 does not convert between
         * ASCII and UTF-8 (h5py writes str attributes as UTF-8 variable-length strings) */
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5T_cset_t cs = H5Tget_cset(ft);
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || cs < 0 || H5Tset_cset(mt, cs) < 0 ||
            H5Aread(a, mt, &s) < 0 || !s) {
            rc = h5io_fail(e, BGFM_EDATA, "reading attribute", name);
        } else {
            *val = bgfm_strdup(e, s);
            if (!*val) rc = BGFM_ENOMEM;
            H5free_memory(s);
        }
        if (mt >= 0) H5Tclose(mt);
    } else {
        size_t len = H5Tget_size(ft);
        char *s = bgfm_calloc(e, len + 1, 1, "attribute");
        if (!s)
            rc = BGFM_ENOMEM;
        else if (H5Aread(a, ft, s) < 0) {
            free(s);
            rc = h5io_fail(e, BGFM_EDATA, "reading attribute", name);
        } else
            *val = s;
    }
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int attr_get_num(hid_t obj, const char *path, const char *name, hid_t mt, void *v,
                        int *n, bgfm_err *e) {
    hid_t a = attr_open(obj, path, name, e);
    if (a < 0) return e->code;
    int rc = 0;
    hid_t sp = H5Aget_space(a);
    hssize_t cnt = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (cnt < 1 || cnt > *n) {
        rc = bgfm_fail(e, BGFM_EDATA, "attribute '%s' has %lld values, expected at most %d", name,
                       (long long)cnt, *n);
    } else if (H5Aread(a, mt, v) < 0) {
        rc = h5io_fail(e, BGFM_EDATA, "reading attribute", name);
    } else {
        *n = (int)cnt;
    }
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

int h5io_attr_get_i64(hid_t obj, const char *path, const char *name, int64_t *v, int *n,
                      bgfm_err *e) {
    return attr_get_num(obj, path, name, H5T_NATIVE_INT64, v, n, e);
}

int h5io_attr_get_f64(hid_t obj, const char *path, const char *name, double *v, int *n,
                      bgfm_err *e) {
    return attr_get_num(obj, path, name, H5T_NATIVE_DOUBLE, v, n, e);
}
