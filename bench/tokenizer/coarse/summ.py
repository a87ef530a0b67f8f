import json,sys
name,sec,f=sys.argv[1:4]
base32={'aozora':6.687,'wiki':5.013,'chat':6.947}
base64={'aozora':7.407,'wiki':5.490,'chat':7.588}
rows=[json.loads(l) for l in open(f) if l.strip()]
out=[name,f"{float(sec):.1f}s"]
for r in rows:
    k=[x for x in base32 if x in r['text']][0]
    b=(base64 if r['vocab_size']>40000 else base32)[k]
    # use exact baseline ratio
    out.append(f"{r['bytes_per_token']:.3f} ({(r['bytes_per_token']/b-1)*100:+.2f}%)")
print("\t".join(out))
