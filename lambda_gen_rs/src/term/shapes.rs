//! Binder shapes of a term (nested binders, a shadowed binder), for the run summary.

use super::names::OVERFLOW_BIT;
use super::{Arena, Id, Kind, Name};

impl Arena {
    /// Whether some λ lies inside another λ's body.
    pub fn has_nested_binders(&self, t: Id) -> bool {
        self.binder_shapes(t).0
    }

    /// Whether some `λx` lies inside the scope of another `λx` (same name).
    pub fn has_shadowed_binder(&self, t: Id) -> bool {
        self.binder_shapes(t).1
    }

    /// (nested binders, shadowed binder) in one traversal that stops once both are found.
    pub fn binder_shapes(&self, t: Id) -> (bool, bool) {
        let mut found = (false, false);
        let mut overflow = Vec::new();
        self.shapes_from(t, 0, false, &mut overflow, &mut found);
        found
    }

    /// `scope`: mask bits of the binders in scope (names with their own bit); `overflow`: the
    /// other binders in scope; `under`: whether we are inside some λ's body.
    fn shapes_from(
        &self,
        mut t: Id,
        mut scope: u64,
        mut under: bool,
        overflow: &mut Vec<Name>,
        found: &mut (bool, bool),
    ) {
        let depth = overflow.len();
        loop {
            let n = self.node(t);
            match n.kind {
                Kind::Var => break,
                Kind::App => {
                    self.shapes_from(n.a, scope, under, overflow, found);
                    if found.0 && found.1 {
                        break;
                    }
                    t = n.b;
                }
                Kind::Lam => {
                    found.0 |= under;
                    let bit = n.name.bit();
                    if bit != OVERFLOW_BIT {
                        found.1 |= (scope >> bit) & 1 != 0;
                        scope |= 1 << bit;
                    } else {
                        found.1 |= overflow.contains(&n.name);
                        overflow.push(n.name);
                    }
                    if found.0 && found.1 {
                        break;
                    }
                    under = true;
                    t = n.a;
                }
            }
        }
        overflow.truncate(depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::test_support::parse;

    #[test]
    fn shapes() {
        let mut a = Arena::new();
        let cases = [
            ("λx.λy.x", true, false),
            ("λx.x (λx.x)", true, true),
            ("(λx.x) (λx.x)", false, false),
            ("λx.y (λz.λx.x)", true, true),
            ("x y", false, false),
            ("λx9.λx9.x9", true, true),
            ("λx9.λy9.x9", true, false),
            ("(λq7.q7) (λq7.q7)", false, false),
            ("λq7.(λq7.q7) q7", true, true),
            ("λa.b (λq7.q7) (λq7.λa.q7)", true, true),
            ("λa.b (λq7.q7) (λq7.λb.q7)", true, false),
        ];
        for (s, nested, shadowed) in cases {
            let t = parse(&mut a, s);
            assert_eq!(a.has_nested_binders(t), nested, "{s}");
            assert_eq!(a.has_shadowed_binder(t), shadowed, "{s}");
        }
    }
}
