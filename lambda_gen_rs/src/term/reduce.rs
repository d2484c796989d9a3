//! Capture-avoiding substitution with the exact renaming rule of `terms._subst` /
//! `fresh_name`, and the normal-order (leftmost-outermost) β-step with rename counting.

use super::{Arena, Id, Kind, Name};

impl Arena {
    /// Whether `t` contains a β-redex (i.e. is not in normal form).
    #[inline]
    pub fn has_redex(&self, t: Id) -> bool {
        self.node(t).redex
    }

    /// `fresh_name(y, FV(n) ∪ FV(body) ∪ {x})`: the first of `y1, y2, ...` (same first letter
    /// as `y`) that is none of those.
    fn fresh_name(&self, y: Name, n: Id, body: Id, x: Name) -> Name {
        let base = y.first_byte();
        let mut k: u32 = 1;
        loop {
            let cand = Name::numbered(base, k);
            if cand != x && !self.is_free(cand, n) && !self.is_free(cand, body) {
                return cand;
            }
            k += 1;
        }
    }

    /// `t[x := n]`, capture-avoiding, exactly as `terms._subst` (same renaming decisions and
    /// fresh names; `renames` counts renamed binders). The free variables of `n` play the role
    /// of `fv_n`.
    pub fn subst(&mut self, t: Id, x: Name, n: Id, renames: &mut u32) -> Id {
        let node = *self.node(t);
        match node.kind {
            Kind::Var => {
                if node.name == x {
                    n
                } else {
                    t
                }
            }
            Kind::App => {
                // Where x is not free, `_subst` rebuilds an equal term and renames nothing.
                if !self.maybe_free(x, t) {
                    return t;
                }
                let f = self.subst(node.a, x, n, renames);
                let a = self.subst(node.b, x, n, renames);
                self.app(f, a)
            }
            Kind::Lam => {
                let y = node.name;
                if y == x {
                    return t;
                }
                let mut body = node.a;
                if !self.is_free(x, body) {
                    return t;
                }
                let mut y_new = y;
                if self.is_free(y, n) {
                    let y2 = self.fresh_name(y, n, body, x);
                    *renames += 1;
                    let v = self.var(y2);
                    body = self.subst(body, y, v, renames);
                    y_new = y2;
                }
                let b = self.subst(body, x, n, renames);
                self.lam(y_new, b)
            }
        }
    }

    /// `t[x := n]` with capture-avoiding renaming.
    pub fn substitute(&mut self, t: Id, x: Name, n: Id) -> Id {
        let mut r = 0;
        self.subst(t, x, n, &mut r)
    }

    /// One normal-order (leftmost-outermost) β-step, or `None` at normal form; `renames` is
    /// increased by the number of α-renamed binders.
    pub fn step(&mut self, t: Id, renames: &mut u32) -> Option<Id> {
        if !self.node(t).redex {
            return None;
        }
        Some(self.step_in(t, renames))
    }

    fn step_in(&mut self, t: Id, renames: &mut u32) -> Id {
        let node = *self.node(t);
        match node.kind {
            Kind::App => {
                let f = *self.node(node.a);
                if f.kind == Kind::Lam {
                    return self.subst(f.a, f.name, node.b, renames);
                }
                if f.redex {
                    let r = self.step_in(node.a, renames);
                    self.app(r, node.b)
                } else {
                    let r = self.step_in(node.b, renames);
                    self.app(node.a, r)
                }
            }
            Kind::Lam => {
                let r = self.step_in(node.a, renames);
                self.lam(node.name, r)
            }
            Kind::Var => unreachable!("a variable has no redex"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::test_support::parse;

    fn step_text(s: &str) -> (Option<String>, u32) {
        let mut a = Arena::new();
        let t = parse(&mut a, s);
        let mut r = 0;
        let next = a.step(t, &mut r).map(|n| a.print(n));
        (next, r)
    }

    #[test]
    fn substitution_with_capture() {
        assert_eq!(step_text("(λx.λy.x y) y"), (Some("λy1.y y1".into()), 1));
        assert_eq!(
            step_text("(λx.λy.λy1.x y y1) (y y1)"),
            (Some("λy2.λy3.y y1 y2 y3".into()), 2)
        );
        assert_eq!(step_text("(λx.λy.x y) z"), (Some("λy.z y".into()), 0));
        // no rename when x is not free under the binder
        assert_eq!(step_text("(λx.λy.y) y"), (Some("λy.y".into()), 0));
        // shadowing binder stops the substitution
        assert_eq!(step_text("(λx.λx.x) y"), (Some("λx.x".into()), 0));
        assert_eq!(step_text("(λx.x x) (λy.y)"), (Some("(λy.y) (λy.y)".into()), 0));
        assert_eq!(step_text("f ((λx.x) y)"), (Some("f y".into()), 0));
        assert_eq!(step_text("λz.z ((λx.x) z)"), (Some("λz.z z".into()), 0));
        assert_eq!(step_text("x y"), (None, 0));
        // fresh names skip x and the free variables of the body
        assert_eq!(step_text("(λx.λy.x y y1 y2) y"), (Some("λy3.y y3 y1 y2".into()), 1));
        assert_eq!(step_text("(λy1.λy.y1 y) y"), (Some("λy2.y y2".into()), 1));
        // overflow names (no mask bit) take the slow exact path
        assert_eq!(
            step_text("(λx.λy.x y y6 y1 y2 y3 y4 y5) y"),
            (Some("λy7.y y7 y6 y1 y2 y3 y4 y5".into()), 1)
        );
        assert_eq!(step_text("(λx.λq7.x q7) q7"), (Some("λq1.q7 q1".into()), 1));
        assert_eq!(step_text("(λx.λq.x q q1) q"), (Some("λq2.q q2 q1".into()), 1));
    }

    #[test]
    fn rename_counting_nested() {
        // values from lambdascope.terms.step_counting_renames: renaming y to y2 must itself
        // rename the inner binder y2 (to y1), which the outer substitution renames again (y3)
        let (t, n) = step_text("(λx.λy.λy2.x y y2) (y y1)");
        assert_eq!(t.as_deref(), Some("λy2.λy3.y y1 y2 y3"));
        assert_eq!(n, 3);
        assert_eq!(
            step_text("(λx.λy.λy1.x y y1) (y y1)"),
            (Some("λy2.λy3.y y1 y2 y3".into()), 2)
        );
    }
}
