SELECT id, text, source, meta FROM bench_docs
WHERE length(text) BETWEEN 20 AND 2000 AND substr(md5(id || ':seed42'), 1, 2) < '80'
UNION ALL
SELECT id, text, source, meta FROM bench_docs
WHERE source IN ('chat', 'web') AND text LIKE '%の%' AND substr(md5(id || ':seed43'), 1, 2) < '40'
UNION ALL
SELECT id, text, source, meta FROM bench_docs
WHERE source = 'jglue' AND substr(md5(id || ':seed44'), 1, 1) < '4'
