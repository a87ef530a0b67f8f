"""Runs the mixture query in DuckDB over the same Parquet files and writes Parquet (zstd).

usage: duckdb_query.py DOCS_PARQUET_DIR OUT.parquet THREADS
"""
import sys
import time

t0 = time.perf_counter()
import duckdb  # noqa: E402

src, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute(f"CREATE VIEW bench_docs AS SELECT * FROM read_parquet('{src}/*.parquet')")
query = open(sys.argv[4]).read() if len(sys.argv) > 4 else None
con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
n = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(f"{n} {time.perf_counter() - t0:.3f}")
