//! Free variables: exact tests backed by each node's 64-bit mask (one bit test for the common
//! names, an exact traversal only for names without a bit of their own).

use super::names::OVERFLOW_BIT;
use super::{Arena, Id, Kind, Name};
use std::collections::BTreeSet;

impl Arena {
    /// Whether `x` is free in `t` (exact).
    #[inline]
    pub fn is_free(&self, x: Name, t: Id) -> bool {
        let bit = x.bit();
        let m = self.node(t).fv;
        if bit != OVERFLOW_BIT {
            (m >> bit) & 1 != 0
        } else if m >> OVERFLOW_BIT == 0 {
            false
        } else {
            self.is_free_slow(x, t)
        }
    }

    /// False only when `x` is certainly not free in `t` (one mask test).
    #[inline(always)]
    pub(super) fn maybe_free(&self, x: Name, t: Id) -> bool {
        (self.node(t).fv >> x.bit()) & 1 != 0
    }

    fn is_free_slow(&self, x: Name, t: Id) -> bool {
        let n = self.node(t);
        if n.fv >> OVERFLOW_BIT == 0 {
            return false;
        }
        match n.kind {
            Kind::Var => n.name == x,
            Kind::Lam => n.name != x && self.is_free_slow(x, n.a),
            Kind::App => self.is_free_slow(x, n.a) || self.is_free_slow(x, n.b),
        }
    }

    /// The set of free variables of `t` (by traversal; for tests and tools).
    pub fn free_vars(&self, t: Id) -> BTreeSet<Name> {
        let n = self.node(t);
        match n.kind {
            Kind::Var => BTreeSet::from([n.name]),
            Kind::Lam => {
                let mut s = self.free_vars(n.a);
                s.remove(&n.name);
                s
            }
            Kind::App => {
                let mut s = self.free_vars(n.a);
                s.extend(self.free_vars(n.b));
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::test_support::parse;

    #[test]
    fn free_vars_and_masks() {
        let mut a = Arena::new();
        let t = parse(&mut a, "λx.x y (λy.y z q9) x7");
        let mut fv: Vec<String> = a.free_vars(t).iter().map(|n| n.to_string()).collect();
        fv.sort();
        assert_eq!(fv, ["q9", "x7", "y", "z"]);
        for name in ["x", "y", "z", "q9", "x7", "a", "q8", "x1"] {
            let n = Name::parse(name).unwrap();
            assert_eq!(a.is_free(n, t), a.free_vars(t).contains(&n), "{name}");
        }
    }
}
