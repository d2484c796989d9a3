//! Term families: the samplers of a trace's first term other than the default `random` one
//! (which is `generate::Generator::sample_initial_term`), exactly as `lambdascope/families.py`.
//!
//! Every sampler draws the same numbers in the same order as its Python twin, and builds the
//! same tree from the same combinators (parsed from the same texts), so both sides write the
//! same bytes. docs/DESIGN.md ("Term families") gives the draw order in prose.

use crate::generate::FREE_NAMES;
use crate::rng::SplitMix64;
use crate::term::{Arena, Id, Name};

/// The family a trace's first term is drawn from (`--family`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Family {
    /// random terms, some built around Church arithmetic (the default)
    #[default]
    Random,
    /// Church numerals under succ/pred/plus/sub/mult/exp and iszero, sometimes applied to two free variables
    Church,
    /// circuits of Church booleans with not/and/or/if, sometimes applied to two free variables
    Bool,
    /// pair/fst/snd/swap compositions over free variables
    Pairs,
    /// application trees of S K I B C W (and free variables) applied to free variables
    Combinators,
}

/// Every family, in the order of `--help` (and of `FAMILIES` in families.py).
pub const FAMILIES: [Family; 5] = [
    Family::Random,
    Family::Church,
    Family::Bool,
    Family::Pairs,
    Family::Combinators,
];

impl Family {
    /// The name on the command line and in trace ids.
    pub fn name(self) -> &'static str {
        match self {
            Family::Random => "random",
            Family::Church => "church",
            Family::Bool => "bool",
            Family::Pairs => "pairs",
            Family::Combinators => "combinators",
        }
    }

    /// The family called `name`, if any.
    pub fn from_name(name: &str) -> Option<Family> {
        FAMILIES.into_iter().find(|f| f.name() == name)
    }
}

/// Share (percent) of first terms put under a head variable (the redex not at 0).
pub const HEAD_PERCENT: u64 = 25;

pub const CHURCH_DEPTH: u32 = 2;
pub const CHURCH_LEAF_PERCENT: u64 = 30;
pub const CHURCH_MAX_NUMERAL: u64 = 3;
pub const SUCC_TEXT: &str = "λn.λf.λx.f (n f x)";
pub const PRED_TEXT: &str = "λn.λf.λx.n (λg.λh.h (g f)) (λu.x) (λu.u)";
pub const PLUS_TEXT: &str = "λm.λn.λf.λx.m f (n f x)";
pub const SUB_TEXT: &str = "λm.λn.n (λn.λf.λx.n (λg.λh.h (g f)) (λu.x) (λu.u)) m";
pub const MULT_TEXT: &str = "λm.λn.λf.m (n f)";
pub const EXP_TEXT: &str = "λm.λn.n m";
pub const ISZERO_TEXT: &str = "λn.n (λu.λx.λy.y) (λx.λy.x)";

pub const BOOL_DEPTH: u32 = 3;
pub const BOOL_LEAF_PERCENT: u64 = 40;
pub const BOOL_APPLIED_PERCENT: u64 = 60;
pub const TRUE_TEXT: &str = "λx.λy.x";
pub const FALSE_TEXT: &str = "λx.λy.y";
pub const NOT_TEXT: &str = "λp.p (λx.λy.y) (λx.λy.x)";
pub const AND_TEXT: &str = "λp.λq.p q p";
pub const OR_TEXT: &str = "λp.λq.p p q";
pub const IF_TEXT: &str = "λp.λs.λt.p s t";

pub const PAIR_DEPTH: u32 = 4;
pub const SWAP_PERCENT: u64 = 30;
pub const VAR_PERCENT: u64 = 40;
pub const PAIR_APPLIED_PERCENT: u64 = 30;
pub const PAIR_TEXT: &str = "λx.λy.λs.s x y";
pub const FST_TEXT: &str = "λp.p (λx.λy.x)";
pub const SND_TEXT: &str = "λp.p (λx.λy.y)";
pub const SWAP_TEXT: &str = "λp.p (λx.λy.λs.s y x)";

pub const COMB_MAX_LEAVES: u64 = 6;
pub const COMB_VAR_PERCENT: u64 = 15;
pub const COMB_MAX_ARGS: u64 = 3;
/// S K I B C W, in the order of the draw `below(6)`.
pub const COMBINATOR_TEXTS: [(&str, &str); 6] = [
    ("S", "λx.λy.λz.x z (y z)"),
    ("K", "λx.λy.x"),
    ("I", "λx.x"),
    ("B", "λx.λy.λz.x (y z)"),
    ("C", "λx.λy.λz.x z y"),
    ("W", "λx.λy.x y y"),
];

/// The combinators of the families, made once in the generator's arena (below the part that
/// is reset per attempt), and the samplers that use them.
#[derive(Clone, Debug)]
pub struct FamilyTerms {
    numerals: [Id; 4],
    succ: Id,
    pred: Id,
    plus: Id,
    sub: Id,
    mult: Id,
    exp: Id,
    iszero: Id,
    tru: Id,
    fls: Id,
    not: Id,
    and: Id,
    or: Id,
    ite: Id,
    pair: Id,
    fst: Id,
    snd: Id,
    swap: Id,
    combinators: [Id; 6],
}

fn parse(a: &mut Arena, text: &str) -> Id {
    a.parse(text).expect("a family's combinator parses")
}

#[inline]
fn free_var(a: &mut Arena, rng: &mut SplitMix64) -> Id {
    let c = FREE_NAMES[rng.below(FREE_NAMES.len() as u64) as usize];
    a.var(Name::letter(c))
}

impl FamilyTerms {
    /// Make the combinators in `a`; `numerals` are the Church numerals 0..3 already there.
    pub fn new(a: &mut Arena, numerals: [Id; 4]) -> Self {
        let mut combinators = [0; 6];
        for (slot, (_, text)) in combinators.iter_mut().zip(COMBINATOR_TEXTS) {
            *slot = parse(a, text);
        }
        FamilyTerms {
            numerals,
            succ: parse(a, SUCC_TEXT),
            pred: parse(a, PRED_TEXT),
            plus: parse(a, PLUS_TEXT),
            sub: parse(a, SUB_TEXT),
            mult: parse(a, MULT_TEXT),
            exp: parse(a, EXP_TEXT),
            iszero: parse(a, ISZERO_TEXT),
            tru: parse(a, TRUE_TEXT),
            fls: parse(a, FALSE_TEXT),
            not: parse(a, NOT_TEXT),
            and: parse(a, AND_TEXT),
            or: parse(a, OR_TEXT),
            ite: parse(a, IF_TEXT),
            pair: parse(a, PAIR_TEXT),
            fst: parse(a, FST_TEXT),
            snd: parse(a, SND_TEXT),
            swap: parse(a, SWAP_TEXT),
            combinators,
        }
    }

    /// A first term of `family` (not `Random`, which the generator samples itself).
    pub fn sample(&self, a: &mut Arena, rng: &mut SplitMix64, family: Family) -> Id {
        match family {
            Family::Random => unreachable!("the random family is Generator::sample_initial_term"),
            Family::Church => self.sample_church(a, rng),
            Family::Bool => self.sample_bool(a, rng),
            Family::Pairs => self.sample_pairs(a, rng),
            Family::Combinators => self.sample_combinators(a, rng),
        }
    }

    /// The last draws of every family: with `HEAD_PERCENT`, `h t` for a free variable `h`.
    fn under_head(a: &mut Arena, rng: &mut SplitMix64, t: Id) -> Id {
        if rng.below(100) < HEAD_PERCENT {
            let h = free_var(a, rng);
            return a.app(h, t);
        }
        t
    }

    /// A Church numeral: the shared ones for 0..3, else built.
    fn numeral(&self, a: &mut Arena, n: u64) -> Id {
        match self.numerals.get(n as usize) {
            Some(&id) => id,
            None => crate::generate::church_numeral(a, n as u32),
        }
    }

    /// A number-valued Church expression (`sample_church_number` of families.py).
    pub fn sample_church_number(&self, a: &mut Arena, rng: &mut SplitMix64, depth: u32) -> Id {
        if depth >= CHURCH_DEPTH || (depth > 0 && rng.below(100) < CHURCH_LEAF_PERCENT) {
            let n = rng.below(CHURCH_MAX_NUMERAL + 1);
            return self.numeral(a, n);
        }
        // succ, pred, plus, sub, mult, exp
        match rng.below(6) {
            5 => {
                let base = 1 + rng.below(3);
                let base = self.numeral(a, base);
                // not 0: `exp m 0` is `0 m`, whose normal form λx.x is only η-equal to 1
                let exponent = 1 + rng.below(2);
                let exponent = self.numeral(a, exponent);
                a.apps(&[self.exp, base, exponent])
            }
            op @ (0 | 1) => {
                let e = self.sample_church_number(a, rng, depth + 1);
                a.app(if op == 0 { self.succ } else { self.pred }, e)
            }
            op => {
                let left = self.sample_church_number(a, rng, depth + 1);
                let right = self.sample_church_number(a, rng, depth + 1);
                let f = [self.plus, self.sub, self.mult][op as usize - 2];
                a.apps(&[f, left, right])
            }
        }
    }

    fn sample_church(&self, a: &mut Arena, rng: &mut SplitMix64) -> Id {
        let kind = rng.below(4);
        let mut e = self.sample_church_number(a, rng, 0);
        if kind >= 2 {
            e = a.app(self.iszero, e);
        }
        if kind % 2 == 1 {
            let f = free_var(a, rng);
            let x = free_var(a, rng);
            e = a.apps(&[e, f, x]);
        }
        Self::under_head(a, rng, e)
    }

    fn sample_circuit(&self, a: &mut Arena, rng: &mut SplitMix64, depth: u32) -> Id {
        if depth >= BOOL_DEPTH || (depth > 0 && rng.below(100) < BOOL_LEAF_PERCENT) {
            return if rng.below(2) == 0 { self.tru } else { self.fls };
        }
        // not, and, or, if
        let (op, arity) = [(self.not, 1), (self.and, 2), (self.or, 2), (self.ite, 3)][rng.below(4) as usize];
        let mut t = op;
        for _ in 0..arity {
            let arg = self.sample_circuit(a, rng, depth + 1);
            t = a.app(t, arg);
        }
        t
    }

    fn sample_bool(&self, a: &mut Arena, rng: &mut SplitMix64) -> Id {
        let mut c = self.sample_circuit(a, rng, 0);
        if rng.below(100) < BOOL_APPLIED_PERCENT {
            let x = free_var(a, rng);
            let y = free_var(a, rng);
            c = a.apps(&[c, x, y]);
        }
        Self::under_head(a, rng, c)
    }

    /// A pair-valued term: `swap P` or `pair V V`.
    fn sample_pair(&self, a: &mut Arena, rng: &mut SplitMix64, depth: u32) -> Id {
        if depth < PAIR_DEPTH && rng.below(100) < SWAP_PERCENT {
            let p = self.sample_pair(a, rng, depth + 1);
            return a.app(self.swap, p);
        }
        let first = self.sample_component(a, rng, depth + 1);
        let second = self.sample_component(a, rng, depth + 1);
        a.apps(&[self.pair, first, second])
    }

    /// A component: a free variable, `fst P`, `snd P` or a nested pair `P`.
    fn sample_component(&self, a: &mut Arena, rng: &mut SplitMix64, depth: u32) -> Id {
        if depth >= PAIR_DEPTH || rng.below(100) < VAR_PERCENT {
            return free_var(a, rng);
        }
        let r = rng.below(3);
        let p = self.sample_pair(a, rng, depth + 1);
        self.project(a, r, p)
    }

    /// `fst p` (r = 0), `snd p` (r = 1) or `p` (r = 2).
    fn project(&self, a: &mut Arena, r: u64, p: Id) -> Id {
        match r {
            0 => a.app(self.fst, p),
            1 => a.app(self.snd, p),
            _ => p,
        }
    }

    fn sample_pairs(&self, a: &mut Arena, rng: &mut SplitMix64) -> Id {
        let r = rng.below(3);
        let p = self.sample_pair(a, rng, 0);
        let mut t = self.project(a, r, p);
        if rng.below(100) < PAIR_APPLIED_PERCENT {
            let v = free_var(a, rng);
            t = a.app(t, v);
        }
        Self::under_head(a, rng, t)
    }

    /// An application tree with `leaves` leaves: the left subtree gets `1 + below(leaves - 1)`.
    fn sample_tree(&self, a: &mut Arena, rng: &mut SplitMix64, leaves: u64) -> Id {
        if leaves == 1 {
            if rng.below(100) < COMB_VAR_PERCENT {
                return free_var(a, rng);
            }
            return self.combinators[rng.below(6) as usize];
        }
        let k = 1 + rng.below(leaves - 1);
        let left = self.sample_tree(a, rng, k);
        let right = self.sample_tree(a, rng, leaves - k);
        a.app(left, right)
    }

    fn sample_combinators(&self, a: &mut Arena, rng: &mut SplitMix64) -> Id {
        let leaves = 1 + rng.below(COMB_MAX_LEAVES);
        let mut t = self.sample_tree(a, rng, leaves);
        let n_args = 1 + rng.below(COMB_MAX_ARGS);
        for _ in 0..n_args {
            let v = free_var(a, rng);
            t = a.app(t, v);
        }
        Self::under_head(a, rng, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in FAMILIES {
            assert_eq!(Family::from_name(f.name()), Some(f));
        }
        assert_eq!(Family::from_name("nope"), None);
        assert_eq!(Family::default(), Family::Random);
    }

    #[test]
    fn combinators_print_as_their_texts() {
        let mut a = Arena::new();
        let numerals = [0, 1, 2, 3].map(|n| crate::generate::church_numeral(&mut a, n));
        let ft = FamilyTerms::new(&mut a, numerals);
        assert_eq!(a.print(ft.sub), SUB_TEXT);
        assert_eq!(a.print(ft.iszero), ISZERO_TEXT);
        assert_eq!(a.print(ft.ite), IF_TEXT);
        assert_eq!(a.print(ft.swap), SWAP_TEXT);
        for (id, (_, text)) in ft.combinators.iter().zip(COMBINATOR_TEXTS) {
            assert_eq!(a.print(*id), text);
        }
        assert_eq!(SUB_TEXT, format!("λm.λn.n ({PRED_TEXT}) m"));
    }
}
