# Pattern building blocks for bench/tokenizer/coarse/run.sh (bash; source it). mk LETTER DIGIT = full regex: spec.
# helpers for building patterns
PRE="'(?i:[sdmt]|ll|ve|re)|"
TAIL='| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+'
AP='[^\r\n\p{L}\p{N}]?+\p{L}+[^\s\p{L}\p{N}]*'
D2='\p{N}{1,2}'
mk() { echo "regex:${PRE}$1|$2${TAIL}"; }
CL='[^\s\p{L}\p{N}\p{Ps}\p{Pi}]*'
APO="[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+${CL}"
DNKL="\\p{N}+(?:\\p{L}+${CL})?"
D2KL="\\p{N}{1,2}(?:\\p{L}+${CL})?"
CLQ='[^\s\p{L}\p{N}「『〝\p{Pi}]*'
APQ="[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+${CLQ}"
DNKLQ="\\p{N}+(?:\\p{L}+${CLQ})?"
DNKLA="\\p{N}+(?:\\p{L}+[^\\s\\p{L}\\p{N}]*)?"
LNQ="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+${CLQ}"
LNA="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+[^\\s\\p{L}\\p{N}]*"
CLX='[^\s\p{L}\p{N}\p{Ps}\p{Pi}\p{Pe}\p{Pf}]*'
LNX="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+${CLX}"
LNS="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[\\p{Pe}\\p{Pf}]+[\\p{L}\\p{N}]+)*${CLQ}"
LNSB="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[\\p{Ps}\\p{Pe}\\p{Pi}\\p{Pf}]+[\\p{L}\\p{N}]+)*${CLQ}"
LNSA="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[\\p{Pe}\\p{Pf}]+[\\p{L}\\p{N}]+)*[^\\s\\p{L}\\p{N}]*"
LNSL="[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+(?:[\\p{Pe}\\p{Pf}]+\\p{L}+)*${CLQ}"
LNSBN="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[\\p{Ps}\\p{Pe}\\p{Pi}\\p{Pf}・]+[\\p{L}\\p{N}]+)*${CLQ}"
LNSC="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[\\p{Ps}\\p{Pe}\\p{Pi}\\p{Pf}・、，]+[\\p{L}\\p{N}]+)*${CLQ}"
S1A="regex:${PRE}[^\\r\\n\\p{L}\\p{N}]?+(?:[\\p{Han}々〆ヶ]+\\p{Hiragana}*|\\p{Hiragana}+|[\\p{Katakana}ー]|[^\\P{L}\\p{Han}\\p{Hiragana}\\p{Katakana}]+)|\\p{N}{1,2}${TAIL}"
S1B="regex:[\\p{Han}々〆ヶ]+\\p{Hiragana}*|."
S1D="regex:[\\p{Han}々〆ヶ]+\\p{Hiragana}{0,2}|."
S1C="regex:[\\p{Han}々〆ヶ]+\\p{Hiragana}*|[\\p{Katakana}ー]+|."
LNSD="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[\\p{Ps}\\p{Pe}\\p{Pi}\\p{Pf}・、，―…]+[\\p{L}\\p{N}]+)*${CLQ}"
LNSE="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[^\\s\\p{L}\\p{N}]+[\\p{L}\\p{N}]+)*${CLQ}"
LNSEA="[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]+(?:[^\\s\\p{L}\\p{N}]+[\\p{L}\\p{N}]+)*[^\\s\\p{L}\\p{N}]*"
S1F="regex:[\\p{Han}々〆ヶ]\\p{Hiragana}*|."
WS="regex:${PRE}[^\\r\\n\\p{L}\\p{N}]?+[\\p{L}\\p{N}]\\S*${TAIL}"
# Digit-preserving variants of WS (session 5): digits stay in nanochat's groups of <= 2;
# WSDK (the last group keeps the letters after it) is the built-in `ja-span`.
WSD="regex:${PRE}[^\\r\\n\\p{L}\\p{N}]?+\\p{L}[^\\s\\p{N}]*|\\p{N}{1,2}${TAIL}"
WSDK="regex:${PRE}[^\\r\\n\\p{L}\\p{N}]?+\\p{L}[^\\s\\p{N}]*|\\p{N}{1,2}(?:\\p{L}[^\\s\\p{N}]*)?${TAIL}"
# Shorter chunks: WSDK cut after sentence ends (SENT) or also after 、 (CLAUSE).
SENT="regex:${PRE}[^\\r\\n\\p{L}\\p{N}]?+\\p{L}[^\\s\\p{N}。！？]*[。！？]*|\\p{N}{1,2}(?:\\p{L}[^\\s\\p{N}。！？]*[。！？]*)?${TAIL}"
CLAUSE="regex:${PRE}[^\\r\\n\\p{L}\\p{N}]?+\\p{L}[^\\s\\p{N}。！？、]*[。！？、]*|\\p{N}{1,2}(?:\\p{L}[^\\s\\p{N}。！？、]*[。！？、]*)?${TAIL}"
