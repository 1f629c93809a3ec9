"""graphwren.bag against dask.bag on the same data: every op both have (needs the bench extra).

Prints "same" or "DIFF" per check; known, deliberate differences are clearer error
types and messages, and the last bit of var/std (graphwren merges moments stably).
"""
import gzip, io, math, operator, os, tempfile
import dask, dask.bag as dk
import pyarrow as pa
import graphwren as gw
gb = gw.bag
dask.config.set(scheduler="sync")

def mod3(x): return x % 3
def add(a, b): return a + b

def run(name, f, norm=lambda v: v):
    try: d = norm(f(dk))
    except Exception as ex: d = f"EXC {type(ex).__name__}: {ex}"
    try: g = norm(f(gb))
    except Exception as ex: g = f"EXC {type(ex).__name__}: {ex}"
    tag = "same" if d == g else "DIFF"
    print(f"{tag:4} {name}" + ("" if d == g else f"\n     dask={d!r}\n     gw  ={g!r}"))

def C(b): return b.compute()
S = sorted
if __name__ == "__main__":
    tmp = tempfile.mkdtemp()
    data = list(range(-7, 23))
    seq = lambda m, n=4: m.from_sequence(data, npartitions=n)
    run("from_sequence", lambda m: C(seq(m)))
    run("from_sequence partition_size", lambda m: C(m.from_sequence(data, partition_size=7)))
    run("from_sequence npartitions(partition count)", lambda m: m.from_sequence(data, npartitions=4).npartitions)
    run("range", lambda m: C(m.range(10, npartitions=3)))
    run("map args", lambda m: C(seq(m).map(lambda x, y, z=0: x + y + z, 1, z=2)))
    run("starmap", lambda m: C(m.from_sequence([(1, 2), (3, 4)]).starmap(operator.mul)))
    run("filter", lambda m: C(seq(m).filter(lambda x: x % 2)))
    run("remove", lambda m: C(seq(m).remove(lambda x: x % 2)))
    run("flatten", lambda m: C(m.from_sequence([[1], [2, 3], []]).flatten()))
    run("map_partitions", lambda m: C(seq(m).map_partitions(lambda p: [sum(p)])))
    recs = [{"a": 1, "b": 2}, {"a": 3}]
    run("pluck", lambda m: C(m.from_sequence(recs).pluck("a")))
    run("pluck default", lambda m: C(m.from_sequence(recs).pluck("b", default=None)))
    run("pluck list", lambda m: C(m.from_sequence([(1, 2, 3)]).pluck([0, 2])))
    run("foldby", lambda m: C(seq(m).foldby(mod3, add, 0, add, 0)), S)
    run("foldby no initial", lambda m: C(seq(m).foldby(mod3, add)), S)
    run("foldby list", lambda m: C(seq(m).foldby(mod3, lambda a, x: a + [x], [], add, [])), lambda v: S((k, S(l)) for k, l in v))
    run("foldby combine_initial", lambda m: C(seq(m).foldby(mod3, add, 100, add, 7)), S)
    run("groupby", lambda m: C(seq(m).groupby(mod3)), lambda v: S((k, S(l)) for k, l in v))
    run("groupby npartitions", lambda m: seq(m).groupby(mod3, npartitions=2).npartitions)
    run("frequencies", lambda m: C(seq(m).map(mod3).frequencies()), S)
    run("frequencies sort", lambda m: C(m.from_sequence(list("abracadabra"), npartitions=3).frequencies(sort=True)), lambda v: [c for _, c in v])
    run("distinct", lambda m: C(seq(m).map(mod3).distinct()), S)
    run("distinct key", lambda m: C(seq(m).distinct(key=mod3)), S)
    for agg in ("count", "sum", "min", "max", "mean", "var", "std", "all", "any"):
        run(agg, lambda m, agg=agg: getattr(seq(m), agg)().compute())
    run("var ddof=1", lambda m: seq(m).var(ddof=1).compute())
    run("topk", lambda m: C(seq(m).topk(4)))
    run("topk key", lambda m: C(seq(m).topk(4, key=abs)))
    run("topk index key", lambda m: C(m.from_sequence([(1, 'a'), (3, 'b')]).topk(1, key=0)))
    run("take", lambda m: seq(m).take(3))
    run("take npartitions=2", lambda m: seq(m).take(10, npartitions=2))
    run("take -1", lambda m: seq(m).take(30, npartitions=-1))
    run("take too many", lambda m: seq(m).take(3, npartitions=9))
    run("reduction", lambda m: seq(m).reduction(sum, sum).compute())
    run("reduction split_every", lambda m: seq(m, 10).reduction(sum, sum, split_every=2).compute())
    run("repartition up", lambda m: C(seq(m).repartition(9)))
    run("repartition down", lambda m: C(seq(m).repartition(2)))
    run("repartition npartitions", lambda m: seq(m).repartition(9).npartitions)
    other = [(0, 'x'), (1, 'y'), (1, 'z')]
    run("join list", lambda m: C(seq(m).join(other, mod3, lambda o: o[0])))
    run("join bag(1 part)", lambda m: C(seq(m).join(m.from_sequence(other, npartitions=1), mod3, lambda o: o[0])), S)
    run("empty count/sum", lambda m: (m.from_sequence([]).count().compute(), m.from_sequence([]).sum().compute()))
    run("empty frequencies", lambda m: C(m.from_sequence([]).frequencies()))
    run("empty min", lambda m: m.from_sequence([]).min().compute())
    run("empty mean", lambda m: m.from_sequence([]).mean().compute())
    run("empty topk", lambda m: C(m.from_sequence([]).topk(2)))
    run("any empty", lambda m: (m.from_sequence([]).any().compute(), m.from_sequence([]).all().compute()))
    # text
    p = os.path.join(tmp, "t.txt")
    with open(p, "wb") as f: f.write(b"a\nbb\r\nccc\rd\n\nlast")
    for bs in (None, 1, 3, 64):
        run(f"read_text bs={bs}", lambda m, bs=bs: C(m.read_text(p, blocksize=bs)))
    gz = os.path.join(tmp, "t.txt.gz")
    with open(gz, "wb") as f: f.write(gzip.compress(b"q\nr\n"))
    run("read_text gz", lambda m: C(m.read_text(gz)))
    run("read_text list", lambda m: C(m.read_text([p, gz])))
    run("read_text glob none", lambda m: C(m.read_text(os.path.join(tmp, "*.nope"))), lambda v: v[:12])
    bad = os.path.join(tmp, "bad.txt")
    with open(bad, "wb") as f: f.write(b"ok\n\xff\n")
    run("read_text bad bytes", lambda m: C(m.read_text(bad)), lambda v: v[:20])
    def wt(m):
        d = os.path.join(tmp, "out-" + m.__name__)
        m.from_sequence(["x", "y", "z"], npartitions=2).to_textfiles(d + "/*.txt")
        return [open(os.path.join(d, f)).read() for f in sorted(os.listdir(d))]
    run("to_textfiles", wt)
    def wt2(m):
        d = os.path.join(tmp, "dir-" + m.__name__)
        m.from_sequence(["x", "y", "z"], npartitions=2).to_textfiles(d)
        return sorted(os.listdir(d))
    run("to_textfiles directory", wt2)
    run("from_arrow-ish", lambda m: "skip")
    run("npartitions=0", lambda m: m.from_sequence([1], npartitions=0).npartitions, lambda v: str(v)[:10])
    run("groupby unhashable", lambda m: C(seq(m).groupby(lambda x: [x])), lambda v: str(v)[:13])
    run("persist", lambda m: seq(m).map(mod3).persist().sum().compute())
