"""h5same.py A.h5 B.h5 [GROUP [MIN]]: exit 0 when every dataset below GROUP (default
the root) of A and B has the same name, dtype, shape and bytes and there are at least
MIN of them (default 1); prints the count, or the first difference. The one HDF5
comparison of the shell tests (tests/lib/pipeline.sh, h5_same)."""
import sys
import h5py

a_path, b_path = sys.argv[1], sys.argv[2]
group = sys.argv[3] if len(sys.argv) > 3 else "/"
least = int(sys.argv[4]) if len(sys.argv) > 4 else 1


def datasets(f):
    g, out = f[group], []
    g.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return g, sorted(out)


with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
    ga, na = datasets(fa)
    gb, nb = datasets(fb)
    if na != nb:
        sys.exit(f"# datasets differ below {group}: {sorted(set(na) ^ set(nb))[:5]}")
    if len(na) < least:
        sys.exit(f"# only {len(na)} datasets below {group}, expected at least {least}")
    for n in na:
        x, y = ga[n][()], gb[n][()]
        if getattr(x, "dtype", None) != getattr(y, "dtype", None) or getattr(x, "shape", None) != getattr(y, "shape", None):
            sys.exit(f"# {group}/{n}: dtype or shape differ")
        if x.tobytes() != y.tobytes() if hasattr(x, "tobytes") else x != y:
            sys.exit(f"# {group}/{n}: values differ")
print(f"# {len(na)} datasets below {group} bit-identical")
