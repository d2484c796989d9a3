//! The trace record: one JSON object per line, with the keys `trace_id, step_k, steps_total,
//! term, target_span` in this order and no spaces, byte-identical to generate.py's
//! `trace_records`:
//!
//! ```text
//! {"trace_id":"SEED-I","step_k":K,"steps_total":T,"term":"...","target_span":[S,E]}
//! ```
//!
//! The trace id is `SEED-I` for the `random` family and `FAMILY-SEED-I` for the others.
//!
//! Terms hold no character that JSON escapes (`[a-z0-9 ().λ]`), so they are written as they are.
//! [`RecordWriter`] is the fast writer used for the output; [`trace_records`] builds the same
//! lines as strings, from a [`Trace`] (for tests and tools).

use crate::families::Family;
use crate::generate::{Options, Trace};

/// Writes the records of one trace. The text before `step_k`'s value and the text between it
/// and the term are the same on every line of the trace: they are encoded once, here.
pub struct RecordWriter {
    /// `{"trace_id":"S-I","step_k":` (or `"F-S-I"`)
    head: [u8; 112],
    head_len: usize,
    /// `,"steps_total":T,"term":"`
    mid: [u8; 40],
    mid_len: usize,
}

impl RecordWriter {
    /// The writer for the records of trace `index` of seed `seed` of `family`, which has
    /// `steps_total` steps (`steps_total + 1` records).
    pub fn new(family: Family, seed: u64, index: u64, steps_total: u32) -> Self {
        let mut head = [0u8; 112];
        let mut h = 0;
        put(&mut head, &mut h, b"{\"trace_id\":\"");
        if family != Family::Random {
            put(&mut head, &mut h, family.name().as_bytes());
            put(&mut head, &mut h, b"-");
        }
        put_u64(&mut head, &mut h, seed);
        put(&mut head, &mut h, b"-");
        put_u64(&mut head, &mut h, index);
        put(&mut head, &mut h, b"\",\"step_k\":");
        let mut mid = [0u8; 40];
        let mut m = 0;
        put(&mut mid, &mut m, b",\"steps_total\":");
        put_u64(&mut mid, &mut m, steps_total as u64);
        put(&mut mid, &mut m, b",\"term\":\"");
        RecordWriter {
            head,
            head_len: h,
            mid,
            mid_len: m,
        }
    }

    /// Append the start of record `k`, up to and including the opening quote of its term, after
    /// making room for the whole record with a term of `term_len` code points.
    #[inline(always)]
    pub fn begin(&self, out: &mut Vec<u8>, k: u64, term_len: u32) {
        out.reserve(128 + 2 * term_len as usize);
        out.extend_from_slice(&self.head[..self.head_len]);
        push_u64(out, k);
        out.extend_from_slice(&self.mid[..self.mid_len]);
    }

    /// Append the end of a record after its term: the closing quote, the target span `[s,e]`,
    /// the closing brace and the newline.
    #[inline(always)]
    pub fn end(&self, out: &mut Vec<u8>, (s, e): (u32, u32)) {
        out.extend_from_slice(b"\",\"target_span\":[");
        push_u64(out, s as u64);
        out.push(b',');
        push_u64(out, e as u64);
        out.extend_from_slice(b"]}\n");
    }
}

/// The JSON lines of one trace, without newlines, byte-identical to generate.py's
/// `trace_records` (terms hold no character that JSON escapes: `[a-z0-9 ().λ]`).
pub fn trace_records(opts: &Options, tr: &Trace) -> Vec<String> {
    let total = tr.terms.len() - 1;
    tr.terms
        .iter()
        .zip(&tr.spans)
        .enumerate()
        .map(|(k, (term, (s, e)))| {
            format!(
                "{{\"trace_id\":\"{}\",\"step_k\":{},\"steps_total\":{},\"term\":\"{}\",\"target_span\":[{},{}]}}",
                trace_id(opts, tr.index),
                k,
                total,
                term,
                s,
                e
            )
        })
        .collect()
}

/// `SEED-I` for the `random` family, `FAMILY-SEED-I` for the others.
pub fn trace_id(opts: &Options, index: u64) -> String {
    match opts.family {
        Family::Random => format!("{}-{}", opts.seed, index),
        f => format!("{}-{}-{}", f.name(), opts.seed, index),
    }
}

#[inline(always)]
fn put(buf: &mut [u8], at: &mut usize, s: &[u8]) {
    buf[*at..*at + s.len()].copy_from_slice(s);
    *at += s.len();
}

#[inline(always)]
fn digits_u64(mut n: u64, tmp: &mut [u8; 20]) -> usize {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

#[inline(always)]
fn put_u64(buf: &mut [u8], at: &mut usize, n: u64) {
    let mut tmp = [0u8; 20];
    let i = digits_u64(n, &mut tmp);
    put(buf, at, &tmp[i..]);
}

/// Append the decimal digits of `n`.
#[inline(always)]
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    } else {
        let mut tmp = [0u8; 20];
        let i = digits_u64(n, &mut tmp);
        out.extend_from_slice(&tmp[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        for n in [0u64, 5, 9, 10, 42, 99, 100, 12345, u64::MAX] {
            let mut v = Vec::new();
            push_u64(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
    }

    #[test]
    fn writer_matches_trace_records() {
        for family in crate::families::FAMILIES {
            let opts = Options {
                seed: u64::MAX,
                family,
                ..Options::default()
            };
            let tr = Trace {
                index: u64::MAX,
                terms: vec!["(λx.x) y".into(), "y".into()],
                spans: vec![(0, 8), (0, 0)],
                renamed: false,
            };
            let w = RecordWriter::new(opts.family, opts.seed, tr.index, 1);
            let mut out = Vec::new();
            for (k, (term, &span)) in tr.terms.iter().zip(&tr.spans).enumerate() {
                w.begin(&mut out, k as u64, term.chars().count() as u32);
                out.extend_from_slice(term.as_bytes());
                w.end(&mut out, span);
            }
            let mut want = trace_records(&opts, &tr).join("\n");
            want.push('\n');
            assert_eq!(String::from_utf8(out).unwrap(), want);
            let id = trace_id(&opts, tr.index);
            assert!(want.starts_with(&format!("{{\"trace_id\":\"{id}\",")));
            match family {
                Family::Random => assert_eq!(id, format!("{}-{}", u64::MAX, u64::MAX)),
                f => assert_eq!(id, format!("{}-{}-{}", f.name(), u64::MAX, u64::MAX)),
            }
        }
    }
}
