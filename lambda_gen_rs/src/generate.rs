//! The trace generator: the same algorithm and random stream as `lambdascope/generate.py`.
//!
//! 1. Trace `i` of seed `s` draws from `SplitMix64::for_trace(s, i)`.
//! 2. It samples a first term from its family (`sample_initial_term` for `random`, the
//!    default; [`crate::families`] for the others) and reduces it in normal order. A term longer
//!    than `max_len` code points at any step is dropped (`too_long`); one that has not reached
//!    normal form after `max_steps` steps is dropped (`too_many_steps`); one that reaches normal
//!    form in fewer than `min_steps` steps is dropped (`too_few_steps`); one whose longest term
//!    is not longer than `min_len` code points is dropped (`too_short`); one none of whose redexes
//!    starts `min_start` or more code points into its term is dropped (`near_start`, checked
//!    last). A dropped
//!    attempt is counted and the next attempt continues the same random stream. After
//!    `MAX_ATTEMPTS` dropped attempts the trace fails with an error.
//! 3. The kept trace is written as `steps_total + 1` JSON records, in order, with the keys
//!    `trace_id, step_k, steps_total, term, target_span` and no spaces (see [`crate::record`]);
//!    `trace_id` is `SEED-I` for `random` and `FAMILY-SEED-I` for the other families.
//!
//! The draw order of every sampler below is the draw order of the Python reference.

use crate::families::{Family, FamilyTerms};
use crate::record::RecordWriter;
use crate::rng::SplitMix64;
use crate::term::{Arena, Id, Name};
use std::fmt;
use std::ops::Range;

pub const DEFAULT_MAX_STEPS: u32 = 64;
pub const DEFAULT_MAX_LEN: u32 = 192;
pub const DEFAULT_MIN_STEPS: u32 = 1;
pub const DEFAULT_MIN_LEN: u32 = 0;
pub const DEFAULT_MIN_START: u32 = 0;
pub const MAX_ATTEMPTS: u32 = 10_000;

/// Few names: shadowing and captures happen.
pub const BINDER_NAMES: [u8; 5] = *b"xyzfg";
/// `x`, `y` also bind: free ones get captured.
pub const FREE_NAMES: [u8; 5] = *b"abcxy";
pub const MAX_DEPTH: usize = 7;
/// Share (percent) of first terms built around a Church-numeral expression.
pub const ARITH_PERCENT: u64 = 35;
/// Percent chance of a leaf at each depth.
pub const LEAF_PERCENT: [u64; MAX_DEPTH] = [0, 10, 25, 40, 55, 70, 85];

/// The reasons an attempt is dropped, in the order of `DROP_REASONS` in generate.py.
pub const DROP_REASONS: [&str; 5] = ["too_long", "too_many_steps", "too_few_steps", "too_short", "near_start"];
pub const TOO_LONG: usize = 0;
pub const TOO_MANY_STEPS: usize = 1;
pub const TOO_FEW_STEPS: usize = 2;
pub const TOO_SHORT: usize = 3;
pub const NEAR_START: usize = 4;

/// Dropped attempts, indexed like `DROP_REASONS`.
pub type Drops = [u64; 5];

/// Generation parameters (the defaults are those of generate.py).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    pub max_steps: u32,
    pub max_len: u32,
    pub min_steps: u32,
    /// Keep only traces with a term longer than this many code points.
    pub min_len: u32,
    /// Keep only traces with a redex starting this many code points or more into its term.
    pub min_start: u32,
    pub family: Family,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            max_steps: DEFAULT_MAX_STEPS,
            max_len: DEFAULT_MAX_LEN,
            min_steps: DEFAULT_MIN_STEPS,
            min_len: DEFAULT_MIN_LEN,
            min_start: DEFAULT_MIN_START,
            family: Family::Random,
        }
    }
}

/// No trace within the caps after `MAX_ATTEMPTS` attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationError {
    pub index: u64,
    pub opts: Options,
}

impl fmt::Display for GenerationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trace {}: no trace within the caps after {} attempts (family={}, max_steps={}, max_len={}, min_steps={}, min_len={}, min_start={})",
            self.index,
            MAX_ATTEMPTS,
            self.opts.family.name(),
            self.opts.max_steps,
            self.opts.max_len,
            self.opts.min_steps,
            self.opts.min_len,
            self.opts.min_start
        )
    }
}

impl std::error::Error for GenerationError {}

/// One kept trace, as text (the library-level equivalent of generate.py's `Trace`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub index: u64,
    pub terms: Vec<String>,
    pub spans: Vec<(u32, u32)>,
    /// Some step needed an α-rename.
    pub renamed: bool,
}

/// Facts about one kept trace, for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFacts {
    pub steps: u32,
    pub renamed: bool,
    pub nested_binders: bool,
    pub shadowed_binder: bool,
    /// Reducible records whose span does not start at 0.
    pub redex_not_at_0: u32,
    /// Hash of the first term's canonical text.
    pub initial_hash: u64,
}

/// Per-thread generator state: an arena (reset per attempt, keeping the shared constants)
/// and scratch vectors.
pub struct Generator {
    arena: Arena,
    base: usize,
    succ: Id,
    plus: Id,
    mult: Id,
    numerals: [Id; 4],
    families: FamilyTerms,
    scope: Vec<Name>,
    roots: Vec<Id>,
    /// Print epoch of the trace being written (see `Arena::print_memo`).
    epoch: u32,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn l(c: u8) -> Name {
    Name::letter(c)
}

impl Generator {
    pub fn new() -> Self {
        let mut a = Arena::with_capacity(1 << 14);
        // SUCC = λn.λf.λx.f (n f x)
        let (f, n, x) = (a.var(l(b'f')), a.var(l(b'n')), a.var(l(b'x')));
        let nfx = a.apps(&[n, f, x]);
        let body = a.app(f, nfx);
        let succ = a.lams(&[l(b'n'), l(b'f'), l(b'x')], body);
        // PLUS = λm.λn.λf.λx.m f (n f x)
        let m = a.var(l(b'm'));
        let nfx = a.apps(&[n, f, x]);
        let body = a.apps(&[m, f, nfx]);
        let plus = a.lams(&[l(b'm'), l(b'n'), l(b'f'), l(b'x')], body);
        // MULT = λm.λn.λf.m (n f)
        let nf = a.app(n, f);
        let body = a.app(m, nf);
        let mult = a.lams(&[l(b'm'), l(b'n'), l(b'f')], body);
        let mut numerals = [0; 4];
        for (k, slot) in numerals.iter_mut().enumerate() {
            *slot = church_numeral(&mut a, k as u32);
        }
        let families = FamilyTerms::new(&mut a, numerals);
        let base = a.len();
        Generator {
            arena: a,
            base,
            succ,
            plus,
            mult,
            numerals,
            families,
            scope: Vec::with_capacity(16),
            roots: Vec::with_capacity(DEFAULT_MAX_STEPS as usize + 2),
            epoch: 0,
        }
    }

    /// The arena holding the current attempt's terms.
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The terms of the last kept trace (valid until the next call to `reduce`).
    pub fn roots(&self) -> &[Id] {
        &self.roots
    }

    fn sample_leaf(&mut self, rng: &mut SplitMix64) -> Id {
        // scope holds binder names outermost first; duplicates shadow
        let r = rng.below(100);
        let n = self.scope.len();
        if n > 0 && r < 50 {
            // the innermost binder: arguments get used, often more than once
            let x = self.scope[n - 1];
            return self.arena.var(x);
        }
        if n > 0 && r < 88 {
            let x = self.scope[rng.below(n as u64) as usize];
            return self.arena.var(x);
        }
        let c = FREE_NAMES[rng.below(FREE_NAMES.len() as u64) as usize];
        self.arena.var(l(c))
    }

    /// One random term over the current scope (`sample_term` of generate.py).
    pub fn sample_term(&mut self, rng: &mut SplitMix64, depth: usize) -> Id {
        if depth >= MAX_DEPTH {
            return self.sample_leaf(rng);
        }
        if rng.below(100) < LEAF_PERCENT[depth] {
            return self.sample_leaf(rng);
        }
        let r = rng.below(100);
        if r < 30 {
            // abstraction
            let x = l(BINDER_NAMES[rng.below(BINDER_NAMES.len() as u64) as usize]);
            self.scope.push(x);
            let body = self.sample_term(rng, depth + 1);
            self.scope.pop();
            return self.arena.lam(x, body);
        }
        if r < 60 {
            // a redex: (λx.body) arg
            let x = l(BINDER_NAMES[rng.below(BINDER_NAMES.len() as u64) as usize]);
            self.scope.push(x);
            let body = self.sample_term(rng, depth + 1);
            self.scope.pop();
            let arg = self.sample_term(rng, depth + 1);
            let f = self.arena.lam(x, body);
            return self.arena.app(f, arg);
        }
        let f = self.sample_term(rng, depth + 1);
        let arg = self.sample_term(rng, depth + 1);
        self.arena.app(f, arg)
    }

    /// A Church-numeral expression: numerals 0..3 under succ, plus and mult.
    pub fn sample_arith(&mut self, rng: &mut SplitMix64, depth: u32) -> Id {
        if depth >= 2 || (depth > 0 && rng.below(100) < 40) {
            return self.numerals[rng.below(4) as usize];
        }
        let r = rng.below(3);
        if r == 0 {
            let e = self.sample_arith(rng, depth + 1);
            return self.arena.app(self.succ, e);
        }
        let left = self.sample_arith(rng, depth + 1);
        let right = self.sample_arith(rng, depth + 1);
        let op = if r == 1 { self.plus } else { self.mult };
        self.arena.apps(&[op, left, right])
    }

    /// A trace's first term: a random term, or a Church expression applied to two random terms.
    pub fn sample_initial_term(&mut self, rng: &mut SplitMix64) -> Id {
        if rng.below(100) < ARITH_PERCENT {
            let e = self.sample_arith(rng, 0);
            self.scope.clear();
            let f = self.sample_term(rng, 3);
            let x = self.sample_term(rng, 3);
            let mut t = self.arena.apps(&[e, f, x]);
            if rng.below(2) == 0 {
                // under a head variable: the redex is not at position 0
                let c = FREE_NAMES[rng.below(FREE_NAMES.len() as u64) as usize];
                let h = self.arena.var(l(c));
                t = self.arena.app(h, t);
            }
            return t;
        }
        self.scope.clear();
        self.sample_term(rng, 0)
    }

    /// A trace's first term from `family` (`sample_first_term` of generate.py).
    pub fn sample_first_term(&mut self, rng: &mut SplitMix64, family: Family) -> Id {
        match family {
            Family::Random => self.sample_initial_term(rng),
            f => self.families.sample(&mut self.arena, rng, f),
        }
    }

    /// Run the attempts of trace `index`; on success the kept trace's terms are `roots()` and
    /// the result says whether some step needed an α-rename. Dropped attempts are added to
    /// `drops` (indexed like `DROP_REASONS`).
    pub fn reduce(&mut self, opts: &Options, index: u64, drops: &mut Drops) -> Result<bool, GenerationError> {
        let mut rng = SplitMix64::for_trace(opts.seed, index);
        let max_steps = opts.max_steps as usize;
        for _ in 0..MAX_ATTEMPTS {
            self.arena.truncate(self.base);
            self.roots.clear();
            let mut t = self.sample_first_term(&mut rng, opts.family);
            let mut renames: u32 = 0;
            let mut reason = None;
            let mut longest = 0;
            loop {
                let len = self.arena.print_len(t);
                if len > opts.max_len {
                    reason = Some(TOO_LONG);
                    break;
                }
                longest = longest.max(len);
                self.roots.push(t);
                if !self.arena.has_redex(t) {
                    break;
                }
                if self.roots.len() > max_steps {
                    reason = Some(TOO_MANY_STEPS);
                    break;
                }
                t = self.arena.step(t, &mut renames).expect("a term with a redex steps");
            }
            if reason.is_none() && ((self.roots.len() - 1) as u64) < opts.min_steps as u64 {
                reason = Some(TOO_FEW_STEPS);
            }
            if reason.is_none() && longest <= opts.min_len {
                reason = Some(TOO_SHORT);
            }
            if reason.is_none()
                && opts.min_start > 0
                && !self.roots.iter().any(|&r| self.arena.redex_span(r).0 >= opts.min_start)
            {
                reason = Some(NEAR_START);
            }
            match reason {
                None => return Ok(renames > 0),
                Some(r) => drops[r] += 1,
            }
        }
        self.roots.clear();
        Err(GenerationError {
            index,
            opts: opts.clone(),
        })
    }

    /// The `index`-th trace of `opts.seed` as text (like generate.py's `make_trace`).
    pub fn make_trace(&mut self, opts: &Options, index: u64, drops: &mut Drops) -> Result<Trace, GenerationError> {
        let renamed = self.reduce(opts, index, drops)?;
        let terms = self.roots.iter().map(|&t| self.arena.print(t)).collect();
        let spans = self.roots.iter().map(|&t| self.arena.redex_span(t)).collect();
        Ok(Trace {
            index,
            terms,
            spans,
            renamed,
        })
    }

    /// Generate trace `index` and append its JSON lines (each ending in `\n`) to `out`.
    pub fn write_trace(
        &mut self,
        opts: &Options,
        index: u64,
        drops: &mut Drops,
        out: &mut Vec<u8>,
    ) -> Result<TraceFacts, GenerationError> {
        let renamed = self.reduce(opts, index, drops)?;
        let total = (self.roots.len() - 1) as u32;
        // a new print epoch: memos of earlier traces (maybe in another buffer) are not used
        if self.epoch == u32::MAX {
            self.arena.clear_memo();
            self.epoch = 0;
        }
        self.epoch += 1;

        let records = RecordWriter::new(opts.family, opts.seed, index, total);
        let mut facts = TraceFacts {
            steps: total,
            renamed,
            ..TraceFacts::default()
        };
        for (k, &t) in self.roots.iter().enumerate() {
            records.begin(out, k as u64, self.arena.print_len(t));
            let term_start = out.len();
            self.arena.print_memo(t, out, self.epoch);
            if k == 0 {
                facts.initial_hash = hash_bytes(&out[term_start..]);
            }
            let (s, e) = self.arena.redex_span(t);
            if (s, e) != (0, 0) && s != 0 {
                facts.redex_not_at_0 += 1;
            }
            records.end(out, (s, e));
        }
        let first = self.roots[0];
        (facts.nested_binders, facts.shadowed_binder) = self.arena.binder_shapes(first);
        Ok(facts)
    }
}

/// `λf.λx.f (f ... x)` with `n` applications of `f`.
pub fn church_numeral(a: &mut Arena, n: u32) -> Id {
    let mut body = a.var(l(b'x'));
    for _ in 0..n {
        let f = a.var(l(b'f'));
        body = a.app(f, body);
    }
    let inner = a.lam(l(b'x'), body);
    a.lam(l(b'f'), inner)
}

/// Trace indices of shard `I/N` (1-based `I`): `[(I-1)*T/N, I*T/N)` (integer division).
pub fn shard_range(n_traces: u64, shard: Option<(u64, u64)>) -> Range<u64> {
    match shard {
        None => 0..n_traces,
        Some((i, n)) => {
            let lo = ((i - 1) as u128 * n_traces as u128 / n as u128) as u64;
            let hi = (i as u128 * n_traces as u128 / n as u128) as u64;
            lo..hi
        }
    }
}

/// A 64-bit hash of a byte string (SplitMix64 finaliser over 8-byte words).
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = crate::rng::mix64(b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = crate::rng::mix64(h ^ u64::from_le_bytes(c.try_into().unwrap()));
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    crate::rng::mix64(h ^ u64::from_le_bytes(last) ^ 0x5555)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::trace_records;

    #[test]
    fn constants_print() {
        let g = Generator::new();
        let a = g.arena();
        assert_eq!(a.print(g.succ), "λn.λf.λx.f (n f x)");
        assert_eq!(a.print(g.plus), "λm.λn.λf.λx.m f (n f x)");
        assert_eq!(a.print(g.mult), "λm.λn.λf.m (n f)");
        assert_eq!(a.print(g.numerals[0]), "λf.λx.x");
        assert_eq!(a.print(g.numerals[3]), "λf.λx.f (f (f x))");
    }

    #[test]
    fn shards_partition() {
        for t in [0u64, 1, 2, 10, 97, 1000] {
            for n in 1..=9u64 {
                let mut next = 0;
                for i in 1..=n {
                    let r = shard_range(t, Some((i, n)));
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, t);
            }
        }
        assert_eq!(shard_range(10, Some((2, 3))), 3..6);
        assert_eq!(shard_range(10, None), 0..10);
    }

    #[test]
    fn records_match_write_trace() {
        let opts = Options {
            seed: 7,
            ..Options::default()
        };
        let mut g = Generator::new();
        for i in 0..200 {
            let mut d1 = [0; 5];
            let mut d2 = [0; 5];
            let tr = g.make_trace(&opts, i, &mut d1).unwrap();
            let mut want = trace_records(&opts, &tr).join("\n");
            want.push('\n');
            let mut out = Vec::new();
            let facts = g.write_trace(&opts, i, &mut d2, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
            assert_eq!(d1, d2);
            assert_eq!(facts.steps as usize, tr.terms.len() - 1);
            assert_eq!(facts.renamed, tr.renamed);
            assert!(tr.terms.iter().all(|t| t.chars().count() <= 192));
            assert!(facts.steps >= 1 && facts.steps <= 64);
        }
    }

    #[test]
    fn every_family_keeps_most_attempts_at_default_caps() {
        let mut g = Generator::new();
        for family in crate::families::FAMILIES {
            let opts = Options {
                seed: 2,
                family,
                ..Options::default()
            };
            let mut drops = [0; 5];
            let n = 500;
            for i in 0..n {
                let tr = g.make_trace(&opts, i, &mut drops).unwrap();
                assert!(tr.terms.len() >= 2, "{family:?}");
            }
            let dropped: u64 = drops.iter().sum();
            assert!(dropped * 100 < 60 * (dropped + n), "{family:?}: {drops:?}");
            assert_eq!(drops[TOO_SHORT], 0);
        }
    }

    #[test]
    fn min_len_drops_short_attempts() {
        let opts = Options {
            seed: 4,
            min_len: 120,
            family: Family::Pairs,
            ..Options::default()
        };
        let mut g = Generator::new();
        let mut drops = [0; 5];
        for i in 0..100 {
            let tr = g.make_trace(&opts, i, &mut drops).unwrap();
            assert!(tr.terms.iter().any(|t| t.chars().count() > 120));
            assert!(tr.terms.iter().all(|t| t.chars().count() <= 192));
        }
        assert!(drops[TOO_SHORT] > 0, "{drops:?}");
    }

    #[test]
    fn min_start_keeps_traces_with_a_redex_far_in() {
        let opts = Options {
            seed: 5,
            min_start: 30,
            ..Options::default()
        };
        let mut g = Generator::new();
        let mut drops = [0; 5];
        for i in 0..100 {
            let tr = g.make_trace(&opts, i, &mut drops).unwrap();
            assert!(tr.spans.iter().any(|&(s, _)| s >= 30), "{:?}", tr.spans);
        }
        assert!(drops[NEAR_START] > 0, "{drops:?}");
        // without it nothing is dropped for it
        let mut plain = [0; 5];
        for i in 0..100 {
            g.make_trace(&Options { seed: 5, ..Options::default() }, i, &mut plain).unwrap();
        }
        assert_eq!(plain[NEAR_START], 0);
    }

    #[test]
    fn first_trace_of_seed_1() {
        // from lambdascope.generate (Python reference), seed 1, trace 0
        let opts = Options {
            seed: 1,
            ..Options::default()
        };
        let mut g = Generator::new();
        let tr = g.make_trace(&opts, 0, &mut [0; 5]).unwrap();
        let recs = trace_records(&opts, &tr);
        assert_eq!(
            recs[0],
            r#"{"trace_id":"1-0","step_k":0,"steps_total":6,"term":"c ((λn.λf.λx.f (n f x)) (λf.λx.f (f (f x))) y ((λg.y) a))","target_span":[3,43]}"#
        );
        assert_eq!(
            recs[2],
            r#"{"trace_id":"1-0","step_k":2,"steps_total":6,"term":"c ((λx.y ((λf.λx.f (f (f x))) y x)) ((λg.y) a))","target_span":[3,46]}"#
        );
    }
}
