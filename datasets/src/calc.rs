//! The calculator tool: nanochat's `use_calculator` with Python semantics, without Python.
//!
//! nanochat evaluates a tool call with `eval(expr, {"__builtins__": {}}, {})` after two checks
//! (nanochat-spec §10.4): commas are removed; an arithmetic expression may use only
//! `0123456789*+-/.() ` and no `**`; otherwise only `'str'.count('x')` is allowed. This module
//! implements exactly those two forms so that tool outputs match what Python prints:
//! `/` is true division, `//` floor division, integers print without `.0`, floats print as
//! Python's `repr` (`0.2`, `3.3333333333333335`, `1e+16`).

use std::fmt;

/// A Python number: int (arbitrary precision in Python; i128 here, overflow is an error) or float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i128),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }
}

impl fmt::Display for Value {
    /// Python's `str()` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&python_float_repr(*x)),
        }
    }
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("character `{0}` is not allowed in a calculator expression")]
    BadChar(char),
    #[error("`**` is not allowed in a calculator expression")]
    Power,
    #[error("syntax error at byte {0}")]
    Syntax(usize),
    #[error("division by zero")]
    DivisionByZero,
    #[error("integer overflow")]
    Overflow,
    #[error("empty expression")]
    Empty,
    #[error("only `'text'.count('x')` is allowed besides arithmetic")]
    NotCount,
}

/// Evaluates a tool call the way nanochat's `use_calculator` does and returns what Python would
/// print, or an error where nanochat would return `None`.
pub fn use_calculator(expr: &str) -> Result<String, CalcError> {
    let expr: String = expr.chars().filter(|&c| c != ',').collect();
    if expr.chars().all(|c| "0123456789*+-/.() ".contains(c)) {
        if expr.contains("**") {
            return Err(CalcError::Power);
        }
        return eval_arith(&expr).map(|v| v.to_string());
    }
    eval_count(&expr).map(|n| n.to_string())
}

/// Evaluates an arithmetic expression (`+ - * / // % ( )`, unary signs, decimals) with Python
/// semantics. Unlike [`use_calculator`] it does not refuse `**` or `%` (used to validate data).
pub fn eval_arith(expr: &str) -> Result<Value, CalcError> {
    let mut p = Parser {
        s: expr.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    if p.i == p.s.len() {
        return Err(CalcError::Empty);
    }
    let v = p.expr()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(CalcError::Syntax(p.i));
    }
    Ok(v)
}

/// `'text'.count('x')`: non-overlapping substring count (Python `str.count`).
fn eval_count(expr: &str) -> Result<usize, CalcError> {
    for c in expr.chars() {
        if !(c.is_ascii_alphanumeric() || "'\"()._ ".contains(c)) {
            return Err(CalcError::BadChar(c));
        }
    }
    let lower = expr.to_lowercase();
    const BANNED: [&str; 17] = [
        "__",
        "import",
        "exec",
        "eval",
        "compile",
        "open",
        "file",
        "input",
        "raw_input",
        "globals",
        "locals",
        "vars",
        "dir",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
    ];
    if BANNED.iter().any(|b| lower.contains(b)) || !expr.contains(".count(") {
        return Err(CalcError::NotCount);
    }
    let e = expr.trim();
    let (hay, rest) = quoted(e).ok_or(CalcError::NotCount)?;
    let rest = rest
        .trim_start()
        .strip_prefix(".count(")
        .ok_or(CalcError::NotCount)?;
    let (needle, rest) = quoted(rest.trim_start()).ok_or(CalcError::NotCount)?;
    if rest.trim() != ")" {
        return Err(CalcError::NotCount);
    }
    if needle.is_empty() {
        return Ok(hay.chars().count() + 1);
    }
    Ok(hay.matches(needle).count())
}

fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let body = &s[1..];
    let end = body.find(q)?;
    Some((&body[..end], &body[end + 1..]))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, tok: &[u8]) -> bool {
        self.skip_ws();
        if self.s[self.i..].starts_with(tok) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Value, CalcError> {
        let mut v = self.term()?;
        loop {
            if self.eat(b"+") {
                v = add(v, self.term()?, false)?;
            } else if self.eat(b"-") {
                v = add(v, self.term()?, true)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<Value, CalcError> {
        let mut v = self.unary()?;
        loop {
            self.skip_ws();
            let rest = &self.s[self.i..];
            if rest.starts_with(b"**") {
                return Ok(v); // handled in power()
            } else if rest.starts_with(b"//") {
                self.i += 2;
                v = floordiv(v, self.unary()?)?;
            } else if self.eat(b"*") {
                v = mul(v, self.unary()?)?;
            } else if self.eat(b"/") {
                v = truediv(v, self.unary()?)?;
            } else if self.eat(b"%") {
                v = modulo(v, self.unary()?)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<Value, CalcError> {
        if self.eat(b"-") {
            return neg(self.unary()?);
        }
        if self.eat(b"+") {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<Value, CalcError> {
        let base = self.atom()?;
        if self.eat(b"**") {
            let exp = self.unary()?; // right-associative, binds tighter than unary minus on the left
            return pow(base, exp);
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Value, CalcError> {
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let v = self.expr()?;
                if !self.eat(b")") {
                    return Err(CalcError::Syntax(self.i));
                }
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) => {
                if c.is_ascii() && !b"+-*/%(). 0123456789".contains(&c) {
                    Err(CalcError::BadChar(c as char))
                } else {
                    Err(CalcError::Syntax(self.i))
                }
            }
            None => Err(CalcError::Syntax(self.i)),
        }
    }

    fn number(&mut self) -> Result<Value, CalcError> {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.') {
            self.i += 1;
        }
        let text =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| CalcError::Syntax(start))?;
        if text.contains('.') {
            if text == "." || text.matches('.').count() > 1 {
                return Err(CalcError::Syntax(start));
            }
            text.parse::<f64>()
                .map(Value::Float)
                .map_err(|_| CalcError::Syntax(start))
        } else {
            // Python 3 rejects leading zeros in non-zero integer literals ("012").
            if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
                return Err(CalcError::Syntax(start));
            }
            text.parse::<i128>()
                .map(Value::Int)
                .map_err(|_| CalcError::Overflow)
        }
    }
}

fn add(a: Value, b: Value, sub: bool) -> Result<Value, CalcError> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Value::Int(
            if sub {
                x.checked_sub(y)
            } else {
                x.checked_add(y)
            }
            .ok_or(CalcError::Overflow)?,
        ),
        _ => {
            let (x, y) = (a.as_f64(), b.as_f64());
            Value::Float(if sub { x - y } else { x + y })
        }
    })
}

fn mul(a: Value, b: Value) -> Result<Value, CalcError> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Value::Int(x.checked_mul(y).ok_or(CalcError::Overflow)?),
        _ => Value::Float(a.as_f64() * b.as_f64()),
    })
}

fn truediv(a: Value, b: Value) -> Result<Value, CalcError> {
    let d = b.as_f64();
    if d == 0.0 {
        return Err(CalcError::DivisionByZero);
    }
    Ok(Value::Float(match (a, b) {
        // Python divides ints exactly-rounded; via f64 is exact for |x|, |y| < 2^53.
        (Value::Int(x), Value::Int(y)) => x as f64 / y as f64,
        _ => a.as_f64() / d,
    }))
}

fn floordiv(a: Value, b: Value) -> Result<Value, CalcError> {
    match (a, b) {
        (Value::Int(_), Value::Int(0)) => Err(CalcError::DivisionByZero),
        (Value::Int(x), Value::Int(y)) => Ok(Value::Int(
            x.div_euclid(y) - i128::from(y < 0 && x.rem_euclid(y) != 0),
        )),
        _ => {
            let d = b.as_f64();
            if d == 0.0 {
                return Err(CalcError::DivisionByZero);
            }
            Ok(Value::Float((a.as_f64() / d).floor()))
        }
    }
}

fn modulo(a: Value, b: Value) -> Result<Value, CalcError> {
    match (a, b) {
        (Value::Int(_), Value::Int(0)) => Err(CalcError::DivisionByZero),
        (Value::Int(x), Value::Int(y)) => {
            let r = x % y;
            Ok(Value::Int(if r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }))
        }
        _ => {
            let (x, y) = (a.as_f64(), b.as_f64());
            if y == 0.0 {
                return Err(CalcError::DivisionByZero);
            }
            let r = x % y;
            Ok(Value::Float(if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                r + y
            } else {
                r
            }))
        }
    }
}

fn neg(a: Value) -> Result<Value, CalcError> {
    Ok(match a {
        Value::Int(x) => Value::Int(x.checked_neg().ok_or(CalcError::Overflow)?),
        Value::Float(x) => Value::Float(-x),
    })
}

fn pow(a: Value, b: Value) -> Result<Value, CalcError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) if y >= 0 => {
            let e = u32::try_from(y).map_err(|_| CalcError::Overflow)?;
            x.checked_pow(e).map(Value::Int).ok_or(CalcError::Overflow)
        }
        _ => {
            if a.as_f64() == 0.0 && b.as_f64() < 0.0 {
                return Err(CalcError::DivisionByZero);
            }
            Ok(Value::Float(a.as_f64().powf(b.as_f64())))
        }
    }
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values, exponent form
/// below 1e-4 and from 1e16 on.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust: "1.5e-5" / "1e16"; Python: "1.5e-05" / "1e+16".
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_semantics() {
        assert_eq!(use_calculator("12/60").unwrap(), "0.2");
        assert_eq!(use_calculator("10/3").unwrap(), "3.3333333333333335");
        assert_eq!(use_calculator("4/2").unwrap(), "2.0");
        assert_eq!(use_calculator("2*3+4").unwrap(), "10");
        assert_eq!(use_calculator("1,000*3").unwrap(), "3000");
        assert_eq!(use_calculator("-7//2").unwrap(), "-4");
        assert_eq!(use_calculator("(1+2)*-3").unwrap(), "-9");
        assert_eq!(use_calculator(".5*4").unwrap(), "2.0");
        assert_eq!(use_calculator("1e3"), Err(CalcError::NotCount));
        assert_eq!(use_calculator("2**10"), Err(CalcError::Power));
        assert_eq!(use_calculator("1/0"), Err(CalcError::DivisionByZero));
        assert_eq!(use_calculator("'strawberry'.count('r')").unwrap(), "3");
        assert_eq!(use_calculator("'aaaa'.count('aa')").unwrap(), "2");
        assert!(use_calculator("__import__('os')").is_err());
        assert!(use_calculator("(1+2").is_err());
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(python_float_repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1.5e-5), "1.5e-05");
        assert_eq!(python_float_repr(123456789.0), "123456789.0");
        assert_eq!(python_float_repr(-0.0), "-0.0");
        assert_eq!(python_float_repr(0.0001), "0.0001");
    }

    #[test]
    fn modulo_and_power_follow_python() {
        assert_eq!(eval_arith("-7 % 3").unwrap(), Value::Int(2));
        assert_eq!(eval_arith("7 % -3").unwrap(), Value::Int(-2));
        assert_eq!(eval_arith("2**3**2").unwrap(), Value::Int(512));
        assert_eq!(eval_arith("-2**2").unwrap(), Value::Int(-4));
    }
}
