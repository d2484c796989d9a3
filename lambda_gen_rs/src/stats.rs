//! Counting what a run produced: drops, the step histogram and the distribution statistics
//! printed at the end of a run (and written by `--summary-json`).

use crate::families::Family;
use crate::generate::{Drops, TraceFacts, DROP_REASONS};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

/// The keys of `distinct_initial` are already well-mixed 64-bit hashes: use them as they are.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of 64-bit hashes.
pub type HashOfHashes = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

/// What a set of traces produced. A worker builds one per piece of work (a range of consecutive
/// trace indices) with [`Stats::add`]; the pieces [`Stats::merge`]d in give the totals of the
/// run, which are its summary ([`Stats::render_text`], [`Stats::to_json`]).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The family of the run (set on the run's totals; not merged).
    pub family: Family,
    pub traces: u64,
    pub records: u64,
    /// Dropped attempts, indexed like `DROP_REASONS`.
    pub dropped: Drops,
    /// `steps_hist[s]`: traces with `steps_total == s`.
    pub steps_hist: Vec<u64>,
    /// Records whose span is not `[0, 0]`.
    pub reducible: u64,
    pub redex_not_at_0: u64,
    pub nested: u64,
    pub shadowed: u64,
    pub renamed: u64,
    /// Hashes of the distinct first terms (64-bit hashes of the canonical text).
    pub distinct_initial: HashOfHashes,
    /// Wall-clock seconds of the run (set on the run's totals; not merged).
    pub elapsed_s: f64,
}

fn frac(n: u64, d: u64) -> Option<f64> {
    if d == 0 {
        None
    } else {
        Some(n as f64 / d as f64)
    }
}

impl Stats {
    /// Count one kept trace.
    pub fn add(&mut self, f: &TraceFacts) {
        self.traces += 1;
        self.records += f.steps as u64 + 1;
        let s = f.steps as usize;
        if self.steps_hist.len() <= s {
            self.steps_hist.resize(s + 1, 0);
        }
        self.steps_hist[s] += 1;
        self.reducible += f.steps as u64;
        self.redex_not_at_0 += f.redex_not_at_0 as u64;
        self.nested += f.nested_binders as u64;
        self.shadowed += f.shadowed_binder as u64;
        self.renamed += f.renamed as u64;
        self.distinct_initial.insert(f.initial_hash);
    }

    /// Add the counts of `p` (another set of traces) to these.
    pub fn merge(&mut self, p: Stats) {
        self.traces += p.traces;
        self.records += p.records;
        for (d, n) in self.dropped.iter_mut().zip(p.dropped) {
            *d += n;
        }
        if self.steps_hist.len() < p.steps_hist.len() {
            self.steps_hist.resize(p.steps_hist.len(), 0);
        }
        for (i, c) in p.steps_hist.iter().enumerate() {
            self.steps_hist[i] += c;
        }
        self.reducible += p.reducible;
        self.redex_not_at_0 += p.redex_not_at_0;
        self.nested += p.nested;
        self.shadowed += p.shadowed;
        self.renamed += p.renamed;
        self.distinct_initial.extend(p.distinct_initial);
    }

    /// The `k`-th smallest steps_total (0-based).
    fn kth_steps(&self, k: u64) -> u64 {
        let mut seen = 0;
        for (s, &c) in self.steps_hist.iter().enumerate() {
            seen += c;
            if seen > k {
                return s as u64;
            }
        }
        unreachable!("k < traces")
    }

    /// Median of steps_total (the mean of the two middle values for an even count, like
    /// Python's `statistics.median`); `None` without traces.
    pub fn median_steps(&self) -> Option<f64> {
        let n = self.traces;
        if n == 0 {
            return None;
        }
        if n % 2 == 1 {
            Some(self.kth_steps(n / 2) as f64)
        } else {
            Some((self.kth_steps(n / 2 - 1) + self.kth_steps(n / 2)) as f64 / 2.0)
        }
    }

    pub fn traces_ge8_steps(&self) -> u64 {
        self.steps_hist.iter().skip(8).sum()
    }

    pub fn frac_ge8_steps(&self) -> Option<f64> {
        frac(self.traces_ge8_steps(), self.traces)
    }

    pub fn frac_distinct_initial(&self) -> Option<f64> {
        frac(self.distinct_initial.len() as u64, self.traces)
    }

    pub fn frac_redex_not_at_0(&self) -> Option<f64> {
        frac(self.redex_not_at_0, self.reducible)
    }

    pub fn frac_alpha_renamed(&self) -> Option<f64> {
        frac(self.renamed, self.traces)
    }

    pub fn records_per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.records as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// The summary as a JSON object, one key per line (fractions are in [0, 1]; `null` where
    /// undefined, e.g. the median of no traces).
    pub fn to_json(&self) -> String {
        fn num(x: Option<f64>) -> String {
            match x {
                // Rust prints the shortest text that reads back as the same f64, without an
                // exponent: valid JSON
                Some(v) if v.is_finite() => format!("{v:?}"),
                _ => "null".to_string(),
            }
        }
        let dropped: Vec<String> = DROP_REASONS
            .iter()
            .enumerate()
            .map(|(i, r)| format!("\"{r}\": {}", self.dropped[i]))
            .collect();
        let hist: Vec<String> = self
            .steps_hist
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(s, c)| format!("\"{s}\": {c}"))
            .collect();
        let fields = [
            ("family", format!("\"{}\"", self.family.name())),
            ("traces", self.traces.to_string()),
            ("records", self.records.to_string()),
            ("dropped", format!("{{{}}}", dropped.join(", "))),
            ("steps_histogram", format!("{{{}}}", hist.join(", "))),
            ("elapsed_s", num(Some(self.elapsed_s))),
            ("records_per_s", num(Some(self.records_per_s()))),
            ("median_steps", num(self.median_steps())),
            ("frac_ge8_steps", num(self.frac_ge8_steps())),
            ("frac_distinct_initial", num(self.frac_distinct_initial())),
            ("frac_redex_not_at_0", num(self.frac_redex_not_at_0())),
            ("traces_nested_binders", self.nested.to_string()),
            ("traces_shadowed_binders", self.shadowed.to_string()),
            ("frac_alpha_renamed", num(self.frac_alpha_renamed())),
        ];
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("  \"{k}\": {v}")).collect();
        format!("{{\n{}\n}}\n", body.join(",\n"))
    }

    /// The human-readable summary (several lines, each ending in a newline).
    pub fn render_text(&self) -> String {
        let pct = |x: Option<f64>| match x {
            Some(v) => format!("{:.1}%", v * 100.0),
            None => "n/a".to_string(),
        };
        let mut s = String::new();
        let rate = self.records_per_s();
        let _ = writeln!(
            s,
            "lambda-gen: family {}: {} traces, {} records in {:.3} s ({})",
            self.family.name(),
            self.traces,
            self.records,
            self.elapsed_s,
            human_rate(rate)
        );
        let total_dropped: u64 = self.dropped.iter().sum();
        let _ = writeln!(
            s,
            "  dropped attempts: {} (too_long {}, too_many_steps {}, too_few_steps {}, too_short {}, near_start {})",
            total_dropped, self.dropped[0], self.dropped[1], self.dropped[2], self.dropped[3], self.dropped[4]
        );
        let _ = writeln!(s, "  steps per trace:");
        for (label, count) in self.hist_buckets() {
            let width = if self.traces == 0 {
                0
            } else {
                ((count as f64 / self.traces as f64) * 40.0).round() as usize
            };
            let _ = writeln!(
                s,
                "    {:>7} {:>10} {:>6} {}",
                label,
                count,
                pct(frac(count, self.traces)),
                "#".repeat(width)
            );
        }
        let median = match self.median_steps() {
            Some(m) if m.fract() == 0.0 => format!("{m:.0}"),
            Some(m) => format!("{m:.1}"),
            None => "n/a".into(),
        };
        let _ = writeln!(
            s,
            "  median steps {}, traces with >= 8 steps {}, distinct initial terms {}",
            median,
            pct(self.frac_ge8_steps()),
            pct(self.frac_distinct_initial())
        );
        let _ = writeln!(
            s,
            "  reducible records whose redex does not start at 0: {}",
            pct(self.frac_redex_not_at_0())
        );
        let _ = writeln!(
            s,
            "  first terms with nested binders: {} ({}), with a shadowed binder: {} ({})",
            self.nested,
            pct(frac(self.nested, self.traces)),
            self.shadowed,
            pct(frac(self.shadowed, self.traces))
        );
        let _ = writeln!(
            s,
            "  traces that needed an α-rename: {}",
            pct(self.frac_alpha_renamed())
        );
        s
    }

    /// Histogram buckets `0, 1, 2-3, 4-7, 8-15, ...` that hold at least one trace.
    fn hist_buckets(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut lo = 0usize;
        while lo < self.steps_hist.len() {
            let hi = if lo == 0 { 0 } else { lo * 2 - 1 };
            let count: u64 = self.steps_hist[lo..=hi.min(self.steps_hist.len() - 1)].iter().sum();
            if count > 0 {
                let label = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
                out.push((label, count));
            }
            lo = hi + 1;
        }
        out
    }
}

fn human_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M records/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k records/s", r / 1e3)
    } else {
        format!("{r:.0} records/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_with(steps: &[u32]) -> Stats {
        let mut p = Stats::default();
        for (i, &s) in steps.iter().enumerate() {
            p.add(&TraceFacts {
                steps: s,
                initial_hash: i as u64 % 3,
                ..TraceFacts::default()
            });
        }
        let mut sum = Stats::default();
        sum.merge(p);
        sum
    }

    #[test]
    fn median_and_fractions() {
        let s = summary_with(&[1, 9, 3]);
        assert_eq!(s.median_steps(), Some(3.0));
        let s = summary_with(&[1, 2, 9, 10]);
        assert_eq!(s.median_steps(), Some(5.5));
        assert_eq!(s.frac_ge8_steps(), Some(0.5));
        assert_eq!(s.frac_distinct_initial(), Some(0.75));
        assert_eq!(s.records, 1 + 2 + 9 + 10 + 4);
        assert_eq!(summary_with(&[]).median_steps(), None);
    }

    #[test]
    fn buckets() {
        let s = summary_with(&[1, 2, 3, 4, 7, 8, 40]);
        let labels: Vec<String> = s.hist_buckets().into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels, ["1", "2-3", "4-7", "8-15", "32-63"]);
        let j = s.to_json();
        assert!(
            j.contains("\"steps_histogram\": {\"1\": 1, \"2\": 1, \"3\": 1, \"4\": 1, \"7\": 1, \"8\": 1, \"40\": 1}"),
            "{j}"
        );
        assert!(
            j.contains("\"dropped\": {\"too_long\": 0, \"too_many_steps\": 0, \"too_few_steps\": 0, \"too_short\": 0, \"near_start\": 0}"),
            "{j}"
        );
        assert!(j.contains("\"median_steps\": 4.0,"), "{j}");
        assert!(j.starts_with("{\n  \"family\": \"random\",\n"), "{j}");
        assert!(summary_with(&[]).to_json().contains("\"median_steps\": null,"));
        assert!(s.render_text().contains("steps per trace"));
    }

    #[test]
    fn merged_pieces_equal_one_piece() {
        let steps = [1, 9, 3, 3, 0, 17, 8, 2, 64, 5];
        let facts = |i: usize| TraceFacts {
            steps: steps[i],
            renamed: i % 4 == 0,
            nested_binders: i % 2 == 0,
            shadowed_binder: i % 3 == 0,
            redex_not_at_0: i as u32 % 5,
            initial_hash: i as u64 % 7,
        };
        let mut whole = Stats {
            dropped: [3, 1, 4, 1, 5],
            ..Stats::default()
        };
        for i in 0..steps.len() {
            whole.add(&facts(i));
        }
        let mut merged = Stats::default();
        for (lo, hi, dropped) in [(0, 3, [1, 0, 2, 0, 1]), (3, 4, [0, 0, 0, 0, 0]), (4, 10, [2, 1, 2, 1, 4])] {
            let mut piece = Stats {
                dropped,
                ..Stats::default()
            };
            for i in lo..hi {
                piece.add(&facts(i));
            }
            merged.merge(piece);
        }
        assert_eq!(merged.to_json(), whole.to_json());
        assert_eq!(merged.render_text(), whole.render_text());
        assert_eq!(merged.distinct_initial.len(), 7);
    }
}
