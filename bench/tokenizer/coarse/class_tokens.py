# Token share per character class on one text file: python class_tokens.py TEXT TOKDIR... (needs tiktoken).
import sys, json, base64, collections, unicodedata
import tiktoken
def load(d):
    m=json.load(open(d+'/njp-tokenizer.json'))
    ranks={}
    for line in open(d+'/'+m['ranks_file'],'rb'):
        if not line.strip(): continue
        t,r=line.split()
        ranks[base64.b64decode(t)]=int(r)
    return tiktoken.Encoding(name='x',pat_str=m['pattern']['regex'],mergeable_ranks=ranks,special_tokens={}), {v:k for k,v in ranks.items()}
def cc(ch):
    o=ord(ch)
    if ch in ' \t\u3000': return 'space'
    if 0x3040<=o<=0x309f: return 'hira'
    if 0x30a0<=o<=0x30ff and ch!='・': return 'kata'
    if ch=='・': return 'nakaguro'
    if 0x4e00<=o<=0x9fff or 0x3400<=o<=0x4dbf or ch in '々〆ヶ': return 'han'
    cat=unicodedata.category(ch)
    if cat.startswith('N'): return 'digit'
    if cat.startswith('L'):
        return 'latin' if o<0x250 or 0xff21<=o<=0xff5a else 'otherL'
    if ch in '、。，．': return 'jpunct-comma-period'
    if ch in '「」『』（）()[]【】〈〉《》': return 'brackets'
    return 'punct'
def tclass(s):
    cs=set(cc(c) for c in s)
    cs.discard('space') if len(cs)>1 else None
    return '+'.join(sorted(cs))
def main():
    text=sys.argv[1]; dirs=sys.argv[2:]
    lines=[l.rstrip('\n') for l in open(text,encoding='utf-8')]
    res={}
    for d in dirs:
        enc,inv=load(d)
        perchar=collections.Counter(); chars=collections.Counter(); ttype=collections.Counter(); tbytes=collections.Counter()
        ntok=0
        for l in lines:
            ids=enc.encode_ordinary(l)
            ntok+=len(ids)
            # attribute tokens to chars: walk bytes
            b=l.encode('utf-8')
            # char index per byte
            cidx=[]; 
            for i,ch in enumerate(l):
                cidx+= [i]*len(ch.encode('utf-8'))
            pos=0
            for t in ids:
                tb=inv[t]; n=len(tb)
                seg=b[pos:pos+n]
                cis=sorted(set(cidx[pos:pos+n]))
                for ci in cis: perchar[cc(l[ci])]+=1/len(cis)
                try: s=tb.decode('utf-8'); tc=tclass(s)
                except UnicodeDecodeError: tc='partial:'+cc(l[cis[0]])
                ttype[tc]+=1; tbytes[tc]+=n
                pos+=n
            for ch in l: chars[cc(ch)]+=1
        res[d]=(ntok,perchar,chars,ttype,tbytes)
    names=list(res)
    print('tokens:',[res[d][0] for d in names])
    print('\n== tokens attributed to character class (fractional), chars, tok/char')
    chars=res[names[0]][2]
    keys=sorted(chars,key=lambda k:-res[names[0]][1][k])
    print(f"{'class':22}{'chars':>8}"+''.join(f"{d.split('/')[-1][:14]:>16}" for d in names)+'   diff(last-first)')
    for k in keys:
        v=[res[d][1][k] for d in names]
        print(f"{k:22}{chars[k]:8}"+''.join(f"{x:10.0f} ({x/chars[k]:.2f})" for x in v)+f"{v[-1]-v[0]:+10.0f}")
    print('\n== token type histogram (count, avg bytes)')
    allk=set()
    for d in names: allk|=set(res[d][3])
    for k in sorted(allk,key=lambda k:-max(res[d][3][k] for d in names)):
        row=[(res[d][3][k],res[d][4][k]/max(1,res[d][3][k])) for d in names]
        if max(r[0] for r in row)<100: continue
        print(f"{k:34}"+''.join(f"{c:8} {a:5.2f}  " for c,a in row)+f"{row[-1][0]-row[0][0]:+8}")
main()
