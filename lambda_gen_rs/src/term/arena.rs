//! Term nodes and the arena that holds them; the constructors compute each node's cached facts
//! (printed lengths, free-variable mask, whether it contains a redex).

use super::{Id, Name};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    Var,
    Lam,
    App,
}

/// One term node. `name`: the variable (Var) or the binder (Lam). `a`: the body (Lam) or the
/// function (App). `b`: the argument (App).
#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub fv: u64,
    pub name: Name,
    pub a: Id,
    pub b: Id,
    /// Canonical printed length in code points (saturating).
    pub len: u32,
    /// Canonical printed length in UTF-8 bytes (saturating).
    pub blen: u32,
    /// Printing memo: the text of this node was last written at byte `memo_off` of the output
    /// buffer of print epoch `memo_epoch` (0: never).
    pub(super) memo_epoch: u32,
    pub(super) memo_off: u32,
    pub kind: Kind,
    /// Whether the term contains a β-redex.
    pub redex: bool,
}

/// Holds term nodes; ids index into it. Nodes never change once made (apart from their
/// printing memo, which is invisible in the text).
#[derive(Clone, Debug, Default)]
pub struct Arena {
    pub(super) nodes: Vec<Node>,
}

impl Arena {
    pub fn new() -> Self {
        Arena { nodes: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Arena {
            nodes: Vec::with_capacity(n),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Forget every node made after the first `n` (their ids become invalid).
    pub fn truncate(&mut self, n: usize) {
        self.nodes.truncate(n);
    }

    #[inline(always)]
    pub fn node(&self, t: Id) -> &Node {
        &self.nodes[t as usize]
    }

    #[inline(always)]
    fn push(&mut self, n: Node) -> Id {
        let id = self.nodes.len() as Id;
        self.nodes.push(n);
        id
    }

    /// A variable.
    #[inline]
    pub fn var(&mut self, x: Name) -> Id {
        self.push(Node {
            fv: 1u64 << x.bit(),
            name: x,
            a: 0,
            b: 0,
            len: x.char_len(),
            blen: x.char_len(),
            memo_epoch: 0,
            memo_off: 0,
            kind: Kind::Var,
            redex: false,
        })
    }

    /// The abstraction `λx.body`.
    #[inline]
    pub fn lam(&mut self, x: Name, body: Id) -> Id {
        let bn = *self.node(body);
        self.push(Node {
            fv: bn.fv & !x.clear_mask(),
            name: x,
            a: body,
            b: 0,
            len: bn.len.saturating_add(2 + x.char_len()),
            blen: bn.blen.saturating_add(3 + x.char_len()),
            memo_epoch: 0,
            memo_off: 0,
            kind: Kind::Lam,
            redex: bn.redex,
        })
    }

    /// The application `f a`.
    #[inline]
    pub fn app(&mut self, f: Id, a: Id) -> Id {
        let fnode = *self.node(f);
        let anode = *self.node(a);
        let flen = if fnode.kind == Kind::Lam {
            fnode.len.saturating_add(2)
        } else {
            fnode.len
        };
        let alen = if anode.kind == Kind::Var {
            anode.len
        } else {
            anode.len.saturating_add(2)
        };
        let fblen = if fnode.kind == Kind::Lam {
            fnode.blen.saturating_add(2)
        } else {
            fnode.blen
        };
        let ablen = if anode.kind == Kind::Var {
            anode.blen
        } else {
            anode.blen.saturating_add(2)
        };
        self.push(Node {
            fv: fnode.fv | anode.fv,
            name: Name::NONE,
            a: f,
            b: a,
            len: flen.saturating_add(1).saturating_add(alen),
            blen: fblen.saturating_add(1).saturating_add(ablen),
            memo_epoch: 0,
            memo_off: 0,
            kind: Kind::App,
            redex: fnode.kind == Kind::Lam || fnode.redex || anode.redex,
        })
    }

    /// `f a1 a2 ...` (left-associative).
    pub fn apps(&mut self, terms: &[Id]) -> Id {
        let mut r = terms[0];
        for &t in &terms[1..] {
            r = self.app(r, t);
        }
        r
    }

    /// `λn1.λn2....body`.
    pub fn lams(&mut self, names: &[Name], body: Id) -> Id {
        let mut r = body;
        for &n in names.iter().rev() {
            r = self.lam(n, r);
        }
        r
    }

    /// Number of nodes of the term as a tree (shared nodes counted once per occurrence).
    pub fn size(&self, t: Id) -> u64 {
        let n = self.node(t);
        match n.kind {
            Kind::Var => 1,
            Kind::Lam => 1 + self.size(n.a),
            Kind::App => 1 + self.size(n.a) + self.size(n.b),
        }
    }
}
