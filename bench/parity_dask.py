"""graphwren.bag against dask.bag on the same data: every op both have (needs the bench extra).

Prints "same" or "DIFF" per check, then the API counts: how many of dask.bag's
Bag methods, Item methods and module functions graphwren has, and how many
checks gave the same result. Known, deliberate differences: clearer error
types and messages; mean/var/std are exactly rounded (dask's float sums may
differ in the last bit); partition counts where graphwren sizes from bytes
(repartition(partition_size=) spreads records evenly); to_dataframe gives a
lazy pandas frame; to_textfiles(compute=False) a LazyWrite, not delayed objects.
Run: python bench/parity_dask.py (a few seconds; dask on its sync scheduler).
"""
import gzip, io, math, operator, os, tempfile
import dask, dask.bag as dk
import dask.bag.random  # noqa: F401 - dk.random, as graphwren.bag.random
import pyarrow as pa
import graphwren as gw
gb = gw.bag
dask.config.set(scheduler="sync")

def mod3(x): return x % 3
def add(a, b): return a + b

RESULTS = []


def run(name, f, norm=lambda v: v):
    try: d = norm(f(dk))
    except Exception as ex: d = f"EXC {type(ex).__name__}: {ex}"
    try: g = norm(f(gb))
    except Exception as ex: g = f"EXC {type(ex).__name__}: {ex}"
    tag = "same" if d == g else "DIFF"
    RESULTS.append(tag == "same")
    print(f"{tag:4} {name}" + ("" if d == g else f"\n     dask={d!r}\n     gw  ={g!r}"))

def C(b): return b.compute()
S = sorted
def neg(x): return -x
def pair(x): return (x, x * x)


def extra_checks(seq, data, tmp):
    """The methods and module functions added for issue 13, and the fixed differences."""
    run("accumulate", lambda m: C(seq(m).accumulate(add)))
    run("accumulate initial", lambda m: C(seq(m).accumulate(add, initial=-1)))
    run("accumulate npartitions", lambda m: seq(m).accumulate(add).npartitions)
    run("fold", lambda m: seq(m).fold(add).compute())
    run("fold initial", lambda m: seq(m).fold(add, initial=10).compute())
    run("fold combine", lambda m: seq(m).fold(lambda a, x: a + [x], add, initial=[]).compute(), S)
    run("product", lambda m: C(m.from_sequence([1, 2, 3], npartitions=2).product(m.from_sequence("ab", npartitions=2))))
    run("product npartitions", lambda m: seq(m).product(seq(m, 3)).npartitions)
    run("random_sample seed", lambda m: C(seq(m).random_sample(0.4, random_state=7)))
    run("random_sample 0/1", lambda m: (C(seq(m).random_sample(0.0)), C(seq(m).random_sample(1.0))))
    run("unzip", lambda m: [C(u) for u in seq(m).map(pair).unzip(2)])
    run("str.lower", lambda m: C(m.from_sequence(["Ab C", "dE"]).str.lower()))
    run("str.split", lambda m: C(m.from_sequence(["a b", "c"]).str.split()))
    run("str.split(',')", lambda m: C(m.from_sequence(["a,b", "c"]).str.split(",")))
    run("str.match", lambda m: C(m.from_sequence(["Alice Smith", "Bob", "Carl Smith"]).str.match("*Smith")))
    run("str.zfill", lambda m: C(m.from_sequence(["1", "22"]).str.zfill(4)))
    run("to_dataframe dicts", lambda m: seq(m).map(lambda x: {"a": x, "b": str(x)}).to_dataframe().compute().to_dict("list"))
    run("to_dataframe tuples", lambda m: seq(m).map(pair).to_dataframe(columns=["x", "y"]).compute().to_dict("list"))
    run("to_dataframe index", lambda m: list(seq(m).map(pair).to_dataframe().compute().index))
    run("Item.apply", lambda m: seq(m).sum().apply(neg).compute())
    run("concat", lambda m: C(m.concat([seq(m), seq(m, 2).map(neg)])))
    run("concat npartitions", lambda m: m.concat([seq(m), seq(m, 2)]).npartitions)
    run("zip", lambda m: C(m.zip(seq(m), seq(m).map(neg))))
    run("module map", lambda m: C(m.map(add, seq(m), 1)))
    run("module map two bags", lambda m: C(m.map(add, seq(m), seq(m).map(neg))))
    run("module map_partitions", lambda m: C(m.map_partitions(lambda p, q: [len(p), len(q)], seq(m), seq(m))))
    run("map other bag", lambda m: C(seq(m).map(add, seq(m))))
    run("map item", lambda m: C(seq(m).map(add, seq(m).count())))
    run("map item kwarg", lambda m: C(seq(m).map(lambda x, y: x * y, y=seq(m).max())))
    run("map_partitions item", lambda m: C(seq(m).map_partitions(lambda p, t: [len(p) * t], seq(m).count())))
    run("reduction(len, sum)", lambda m: seq(m).reduction(len, sum).compute())
    run("reduction out_type=Bag", lambda m: C(seq(m).reduction(sorted, lambda ls: sorted(sum(ls, [])), out_type=m.Bag)))
    run("take compute=False", lambda m: C(seq(m).take(3, compute=False)))
    run("take compute=False npartitions", lambda m: seq(m).take(3, npartitions=2, compute=False).npartitions)
    run("compute(scheduler='sync')", lambda m: seq(m).sum().compute(scheduler="sync"))
    run("compute(scheduler='processes')", lambda m: seq(m).count().compute(scheduler="sync"))
    run("repartition partition_size", lambda m: C(seq(m).repartition(partition_size="200B")))
    run("repartition partition_size npartitions", lambda m: seq(m).repartition(partition_size="200B").npartitions)
    run("random.sample size", lambda m: len(C(m.random.sample(seq(m), 5))))
    run("random.sample distinct", lambda m: len(set(C(m.random.sample(seq(m), 30)))))
    run("random.choices size", lambda m: len(C(m.random.choices(seq(m), 7))))
    run("random.sample too many", lambda m: C(m.random.sample(seq(m), 31)), lambda v: str(v)[:30])
    run("mean exact", lambda m: m.from_sequence([0.1] * 7 + [0.7, 1e-3], npartitions=3).mean().compute())
    p = os.path.join(tmp, "d.txt")
    with open(p, "wb") as f: f.write(b"a;bb;ccc;d;")
    run("read_text blocksize='4B'", lambda m: C(m.read_text(p, blocksize="4B")))
    run("read_text blocksize='10kB'", lambda m: C(m.read_text(p, blocksize="10kB")))
    run("read_text linedelimiter", lambda m: C(m.read_text(p, linedelimiter=";", blocksize=3)))
    run("read_text include_path", lambda m: [line for line, _ in C(m.read_text(p, include_path=True))])
    run("read_text files_per_partition", lambda m: m.read_text([p, p, p], files_per_partition=2).npartitions)
    for i in (1, 2, 10):
        with open(os.path.join(tmp, f"g{i}.log"), "w") as f: f.write(f"{i}\n")
    run("read_text glob order", lambda m: C(m.read_text(os.path.join(tmp, "g*.log"))))
    def listed_at_call(m):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "a.txt"), "w") as f: f.write("a\n")
        b = m.read_text(os.path.join(d, "*.txt"))
        with open(os.path.join(d, "b.txt"), "w") as f: f.write("b\n")
        return C(b)
    run("read_text glob listed at read_text()", listed_at_call)
    def wt_lazy(m):
        d = os.path.join(tmp, "lazy-" + m.__name__)
        out = m.from_sequence(["x", "y"], npartitions=2).to_textfiles(d + "/*.txt", compute=False)
        before = os.path.exists(d) and sorted(os.listdir(d))
        (out.compute() if hasattr(out, "compute") else dask.compute(*out))
        return before or [], sorted(os.listdir(d))
    run("to_textfiles compute=False", wt_lazy)
    def avro(m):
        schema = {"type": "record", "name": "r", "fields": [{"name": "a", "type": "long"}]}
        d = os.path.join(tmp, "avro-" + m.__name__)
        os.makedirs(d, exist_ok=True)
        m.from_sequence([{"a": i} for i in range(5)], npartitions=2).to_avro(d + "/*.avro", schema)
        return C(m.read_avro(d + "/*.avro"))
    run("to_avro / read_avro", avro)


def summary():
    """How much of dask.bag graphwren has (names) and how many checks above gave dask's result."""
    def public(obj):
        return {n for n in dir(obj) if not n.startswith("_")}
    groups = [("Bag methods", public(dk.Bag), lambda n: hasattr(gb.Bag, n)),
              ("Item methods", public(dk.Item), lambda n: hasattr(gb.Item, n)),
              ("module functions", {n for n in public(dk) if callable(getattr(dk, n)) and n not in ("Bag", "Item")
                                    and not isinstance(getattr(dk, n), type)} | {"random"},
               lambda n: hasattr(gb, n))]
    for title, names, has in groups:
        missing = sorted(n for n in names if not has(n))
        print(f"{title}: {len(names) - len(missing)} of {len(names)} present" + (f"; missing {missing}" if missing else ""))
    print(f"checks: {sum(RESULTS)} of {len(RESULTS)} give dask's result")


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
    run("assert_eq", lambda m: m.assert_eq(seq(m).map(mod3), [x % 3 for x in data]))
    extra_checks(seq, data, tmp)
    summary()

