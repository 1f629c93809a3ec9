"""The examples in dask.bag's own docstrings, run against graphwren.bag (needs the bench extra).

Each docstring's ``>>>`` examples run as doctests with ``import dask.bag as db``
replaced by ``import graphwren.bag as db``; the script prints the docstrings
whose examples fail, and how many passed. Expected failures: dask internals
(lazify_task, dictitems, split), Bag's docstring building a raw dask graph
(``db.Bag(dsk, ...)``), from_url (it reads github.com), and random_sample's
example, whose from_sequence(range(10)) gets 10 partitions in dask and 8 in
graphwren (so other draws).
Run: python bench/dask_doc_examples.py
"""
import doctest
import inspect

import dask.bag.core as core
import dask.bag.random as drandom
import dask.bag.text as dtext

import graphwren
import graphwren.bag as gb


def docstrings():
    for mod in (core, drandom, dtext):
        for name, obj in vars(mod).items():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj) and obj.__doc__:
                yield f"{mod.__name__}.{name}", obj.__doc__
            if inspect.isclass(obj):
                if obj.__doc__:
                    yield f"{mod.__name__}.{name}", obj.__doc__
                for mname, member in vars(obj).items():
                    fn = getattr(member, "fget", member)
                    if callable(fn) and getattr(fn, "__doc__", None):
                        yield f"{mod.__name__}.{name}.{mname}", fn.__doc__


def main():
    parser = doctest.DocTestParser()
    passed = failed = 0
    for name, doc in docstrings():
        doc = doc.replace("import dask.bag as db", "import graphwren.bag as db")
        doc = doc.replace("from dask.bag import random", "from graphwren.bag import random")
        test = parser.get_doctest(doc, {"db": gb, "graphwren": graphwren}, name, None, 0)
        if not test.examples:
            continue
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        result = runner.run(test, out=lambda text: None)
        if result.failed:
            failed += 1
            print(f"FAIL {name}: {result.failed} of {result.attempted} examples")
        else:
            passed += 1
    print(f"docstrings whose examples all pass: {passed} of {passed + failed}")


if __name__ == "__main__":
    main()
