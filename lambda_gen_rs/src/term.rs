//! Untyped λ-terms: parse, print canonically, find the normal-order redex, contract it.
//!
//! This is the Rust port of `lambdascope/terms.py` (the spec). Terms live in an [`Arena`]: nodes
//! are immutable and may be shared (a term is a DAG, exactly like the Python objects after a
//! substitution), and every node caches what the generator asks about it again and again:
//!
//! * `len`: its canonical printed length in code points, so that the `max_len` cap and the
//!   redex span need no printing;
//! * `redex`: whether it contains a β-redex, so that the normal-order step walks one path only;
//! * `fv`: a 64-bit mask of its free variables (exact for the common names, with one overflow
//!   bit meaning "maybe some other name"), so that capture checks are one AND in the usual case.
//!
//! Canonical printing (DESIGN.md):
//!
//! ```text
//! term := 'λ' var '.' term | app
//! app  := atom (' ' atom)*        -- left-associative
//! atom := var | '(' term ')'
//! var  := [a-z][0-9]*
//! ```
//!
//! Spans are `[start, end)` in Unicode code points (Python `str` indices), never UTF-8 bytes.

use std::collections::BTreeSet;
use std::fmt;

/// A node's index in its [`Arena`].
pub type Id = u32;

/// Nodes whose text is at least this many bytes are memoised by [`Arena::print_memo`].
pub const MEMO_MIN_BYTES: u32 = 8;

/// The λ character (two bytes in UTF-8, one code point).
pub const LAMBDA: char = 'λ';
const LAMBDA_UTF8: [u8; 2] = [0xCE, 0xBB];

// ---------------------------------------------------------------------------------------------
// Names

/// A variable name `[a-z][0-9]*`, packed in 32 bits: the letter in the low 5 bits and, above
/// them, the decimal number "1" followed by the digits (so "x" is 1, "x1" is 11, "x01" is 101):
/// every digit string has its own code, and names compare by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(u32);

const LETTER_BITS: u32 = 5;
const MAX_CODE: u32 = u32::MAX >> LETTER_BITS;

/// Letters whose numbered names (`x1`..`x5`) get their own bit in the free-variable mask: the
/// binder names of the generator, which are the only names `fresh_name` is called with.
const SLOT: [u8; 26] = {
    let mut s = [255u8; 26];
    s[(b'f' - b'a') as usize] = 0;
    s[(b'g' - b'a') as usize] = 1;
    s[(b'm' - b'a') as usize] = 2;
    s[(b'n' - b'a') as usize] = 3;
    s[(b'x' - b'a') as usize] = 4;
    s[(b'y' - b'a') as usize] = 5;
    s[(b'z' - b'a') as usize] = 6;
    s
};
/// The mask bit that stands for every name without a bit of its own.
const OVERFLOW_BIT: u32 = 63;

impl Name {
    /// The one-letter name `c` (`b'a'..=b'z'`).
    pub const fn letter(c: u8) -> Name {
        assert!(c.is_ascii_lowercase());
        Name((c - b'a') as u32 | (1 << LETTER_BITS))
    }

    /// The name `c` followed by the decimal digits of `k` (what `fresh_name` builds).
    pub fn numbered(c: u8, k: u32) -> Name {
        assert!(c.is_ascii_lowercase());
        let mut p: u64 = 10;
        while p <= k as u64 {
            p *= 10;
        }
        let code = p + k as u64;
        assert!(code <= MAX_CODE as u64, "variable name too long");
        Name((c - b'a') as u32 | ((code as u32) << LETTER_BITS))
    }

    /// A name from its letter and digit string; `None` if the digits do not fit (more than 7).
    pub fn from_parts(c: u8, digits: &[u8]) -> Option<Name> {
        if !c.is_ascii_lowercase() {
            return None;
        }
        let mut code: u32 = 1;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            code = code.checked_mul(10)?.checked_add((d - b'0') as u32)?;
            if code > MAX_CODE {
                return None;
            }
        }
        Some(Name((c - b'a') as u32 | (code << LETTER_BITS)))
    }

    /// Parse a whole name such as `"x"` or `"y12"`.
    pub fn parse(s: &str) -> Option<Name> {
        let b = s.as_bytes();
        if b.is_empty() {
            return None;
        }
        Name::from_parts(b[0], &b[1..])
    }

    #[inline(always)]
    fn code(self) -> u32 {
        self.0 >> LETTER_BITS
    }

    /// The first letter, as an ASCII byte.
    #[inline(always)]
    pub fn first_byte(self) -> u8 {
        b'a' + (self.0 & 31) as u8
    }

    /// Printed length (bytes = code points: names are ASCII).
    #[inline(always)]
    pub fn char_len(self) -> u32 {
        let c = self.code();
        if c < 10 {
            1
        } else if c < 100 {
            2
        } else {
            let mut n = 1;
            let mut c = c;
            while c >= 10 {
                c /= 10;
                n += 1;
            }
            n
        }
    }

    /// Append the name to `out`.
    #[inline(always)]
    pub fn write(self, out: &mut Vec<u8>) {
        let c = self.code();
        if c < 10 {
            out.push(self.first_byte());
        } else if c < 100 {
            out.extend_from_slice(&[self.first_byte(), b'0' + (c % 10) as u8]);
        } else {
            out.push(self.first_byte());
            let mut buf = [0u8; 10];
            let mut i = buf.len();
            let mut c = c;
            while c >= 10 {
                i -= 1;
                buf[i] = b'0' + (c % 10) as u8;
                c /= 10;
            }
            out.extend_from_slice(&buf[i..]);
        }
    }

    /// The free-variable mask bit of this name: exact bits for the one-letter names and for
    /// `f1..f5, g1..g5, m1..m5, n1..n5, x1..x5, y1..y5, z1..z5`; [`OVERFLOW_BIT`] for the rest.
    #[inline(always)]
    fn bit(self) -> u32 {
        let letter = self.0 & 31;
        let code = self.code();
        if code == 1 {
            return letter;
        }
        let slot = SLOT[letter as usize];
        if slot != 255 && (11..=15).contains(&code) {
            26 + slot as u32 * 5 + (code - 11)
        } else {
            OVERFLOW_BIT
        }
    }

    /// The bit to clear from a body's mask under a binder of this name (none for overflow
    /// names: another overflow name may still be free).
    #[inline(always)]
    fn clear_mask(self) -> u64 {
        let b = self.bit();
        if b == OVERFLOW_BIT {
            0
        } else {
            1u64 << b
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::with_capacity(8);
        self.write(&mut v);
        f.write_str(std::str::from_utf8(&v).unwrap())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes and the arena

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
    memo_epoch: u32,
    memo_off: u32,
    pub kind: Kind,
    /// Whether the term contains a β-redex.
    pub redex: bool,
}

/// Holds term nodes; ids index into it. Nodes never change once made (apart from their
/// printing memo, which is invisible in the text).
#[derive(Clone, Debug, Default)]
pub struct Arena {
    nodes: Vec<Node>,
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
            name: Name(0),
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

    // -----------------------------------------------------------------------------------------
    // Printing and the redex span

    /// The canonical printed length of `t` in code points.
    #[inline]
    pub fn print_len(&self, t: Id) -> u32 {
        self.node(t).len
    }

    /// Whether `t` contains a β-redex (i.e. is not in normal form).
    #[inline]
    pub fn has_redex(&self, t: Id) -> bool {
        self.node(t).redex
    }

    /// Append the canonical text of `t` (UTF-8) to `out`.
    pub fn print_into(&self, t: Id, out: &mut Vec<u8>) {
        out.reserve(self.node(t).len as usize * 2);
        self.go(t, out);
    }

    fn go(&self, mut t: Id, out: &mut Vec<u8>) {
        loop {
            let n = self.node(t);
            match n.kind {
                Kind::Var => {
                    n.name.write(out);
                    return;
                }
                Kind::Lam => {
                    out.extend_from_slice(&LAMBDA_UTF8);
                    n.name.write(out);
                    out.push(b'.');
                    t = n.a;
                }
                Kind::App => {
                    let f = self.node(n.a);
                    if f.kind == Kind::Lam {
                        out.push(b'(');
                        self.go(n.a, out);
                        out.push(b')');
                    } else {
                        self.go(n.a, out);
                    }
                    out.push(b' ');
                    let arg = self.node(n.b);
                    if arg.kind == Kind::Var {
                        arg.name.write(out);
                        return;
                    }
                    out.push(b'(');
                    self.go(n.b, out);
                    out.push(b')');
                    return;
                }
            }
        }
    }

    /// Append the canonical text of `t` to `out`, like [`Arena::print_into`], copying the text
    /// of any node of at least [`MEMO_MIN_BYTES`] bytes that was already written to this same
    /// `out` during print epoch `epoch` instead of printing it again.
    ///
    /// Successive terms of a trace share most of their nodes, so this turns printing into a
    /// few copies plus the printing of the nodes that the step created. Contract: within one
    /// epoch (a nonzero number), every call gets the same `out`, which is only appended to.
    /// Use a new epoch for a new buffer (or after `out` was cleared or truncated).
    pub fn print_memo(&mut self, t: Id, out: &mut Vec<u8>, epoch: u32) {
        assert!(epoch != 0, "epoch 0 means never printed");
        let blen = self.node(t).blen;
        if blen == u32::MAX {
            // saturated: no exact size to reserve; print safely
            self.print_into(t, out);
            return;
        }
        out.reserve(blen as usize);
        let start = out.len();
        // SAFETY: `reserve` made room for `blen` bytes after `start`; `emit` writes exactly
        // the node's text, whose length is `blen` (computed at construction from the same
        // rules the printer follows), and copies only from `out[..start]` (a memo is used only
        // when it lies entirely below `start`), so source and destination never overlap. A
        // caller that breaks the epoch contract gets wrong text, never a wild read.
        unsafe {
            let base = out.as_mut_ptr();
            let mut pos = start;
            self.emit(t, base, &mut pos, epoch, start);
            debug_assert_eq!(pos, start + blen as usize);
            out.set_len(start + blen as usize);
        }
    }

    /// Forget every printing memo (e.g. before reusing epoch numbers).
    pub fn clear_memo(&mut self) {
        for n in &mut self.nodes {
            n.memo_epoch = 0;
        }
    }

    #[inline(always)]
    unsafe fn put_name(name: Name, base: *mut u8, pos: &mut usize) {
        let c = name.code();
        if c < 10 {
            *base.add(*pos) = name.first_byte();
            *pos += 1;
        } else if c < 100 {
            *base.add(*pos) = name.first_byte();
            *base.add(*pos + 1) = b'0' + (c % 10) as u8;
            *pos += 2;
        } else {
            let mut v = Vec::with_capacity(12);
            name.write(&mut v);
            std::ptr::copy_nonoverlapping(v.as_ptr(), base.add(*pos), v.len());
            *pos += v.len();
        }
    }

    unsafe fn emit(&mut self, t: Id, base: *mut u8, pos: &mut usize, epoch: u32, limit: usize) {
        debug_assert!((t as usize) < self.nodes.len());
        let n = *self.nodes.get_unchecked(t as usize);
        let big = n.blen >= MEMO_MIN_BYTES;
        if big && n.memo_epoch == epoch && n.memo_off as usize + n.blen as usize <= limit {
            std::ptr::copy_nonoverlapping(base.add(n.memo_off as usize), base.add(*pos), n.blen as usize);
            *pos += n.blen as usize;
            return;
        }
        let start = *pos;
        match n.kind {
            Kind::Var => Self::put_name(n.name, base, pos),
            Kind::Lam => {
                *base.add(*pos) = LAMBDA_UTF8[0];
                *base.add(*pos + 1) = LAMBDA_UTF8[1];
                *pos += 2;
                Self::put_name(n.name, base, pos);
                *base.add(*pos) = b'.';
                *pos += 1;
                self.emit(n.a, base, pos, epoch, limit);
            }
            Kind::App => {
                let fk = self.nodes.get_unchecked(n.a as usize).kind;
                if fk == Kind::Lam {
                    *base.add(*pos) = b'(';
                    *pos += 1;
                    self.emit(n.a, base, pos, epoch, limit);
                    *base.add(*pos) = b')';
                    *base.add(*pos + 1) = b' ';
                    *pos += 2;
                } else {
                    self.emit(n.a, base, pos, epoch, limit);
                    *base.add(*pos) = b' ';
                    *pos += 1;
                }
                let arg = *self.nodes.get_unchecked(n.b as usize);
                if arg.kind == Kind::Var {
                    Self::put_name(arg.name, base, pos);
                } else {
                    *base.add(*pos) = b'(';
                    *pos += 1;
                    self.emit(n.b, base, pos, epoch, limit);
                    *base.add(*pos) = b')';
                    *pos += 1;
                }
            }
        }
        if big && start <= u32::MAX as usize {
            let m = self.nodes.get_unchecked_mut(t as usize);
            m.memo_epoch = epoch;
            m.memo_off = start as u32;
        }
    }

    /// The canonical text of `t`.
    pub fn print(&self, t: Id) -> String {
        let mut v = Vec::new();
        self.print_into(t, &mut v);
        String::from_utf8(v).expect("printer writes UTF-8")
    }

    /// `[start, end)` of the normal-order (leftmost-outermost) redex in the canonical text of
    /// `t`, in code points, or `(0, 0)` at normal form. Computed from the cached lengths along
    /// one path: no printing.
    pub fn redex_span(&self, t: Id) -> (u32, u32) {
        let mut t = t;
        let mut off: u32 = 0;
        loop {
            let n = self.node(t);
            if !n.redex {
                return (0, 0);
            }
            match n.kind {
                Kind::Lam => {
                    off += 2 + n.name.char_len();
                    t = n.a;
                }
                Kind::App => {
                    let f = self.node(n.a);
                    if f.kind == Kind::Lam {
                        return (off, off + n.len);
                    }
                    if f.redex {
                        t = n.a;
                    } else {
                        off += f.len + 1;
                        if self.node(n.b).kind != Kind::Var {
                            off += 1;
                        }
                        t = n.b;
                    }
                }
                Kind::Var => unreachable!("a variable has no redex"),
            }
        }
    }

    /// Canonical text and target span, like `terms.print_with_span`.
    pub fn print_with_span(&self, t: Id) -> (String, (u32, u32)) {
        (self.print(t), self.redex_span(t))
    }

    // -----------------------------------------------------------------------------------------
    // Free variables

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
    fn maybe_free(&self, x: Name, t: Id) -> bool {
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

    // -----------------------------------------------------------------------------------------
    // Substitution and reduction

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

    // -----------------------------------------------------------------------------------------
    // Shape statistics

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

    /// Number of nodes of the term as a tree (shared nodes counted once per occurrence).
    pub fn size(&self, t: Id) -> u64 {
        let n = self.node(t);
        match n.kind {
            Kind::Var => 1,
            Kind::Lam => 1 + self.size(n.a),
            Kind::App => 1 + self.size(n.a) + self.size(n.b),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Parsing

    /// Parse a term (lenient like `terms.parse`: `\` may stand for λ, any run of spaces
    /// separates atoms, redundant parentheses are allowed).
    pub fn parse(&mut self, text: &str) -> Result<Id, ParseError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.iter().all(|&c| c == ' ') {
            return Err(ParseError::new(&chars, chars.len(), "a term"));
        }
        let mut p = Parser {
            chars: &chars,
            pos: 0,
            arena: self,
        };
        let t = p.term()?;
        p.skip_spaces();
        if p.pos != chars.len() {
            return Err(ParseError::new(&chars, p.pos, "end of input"));
        }
        Ok(t)
    }
}

/// A term's text does not follow the grammar; `position` is a code-point index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub position: usize,
    pub expected: &'static str,
    pub found: Option<char>,
}

impl ParseError {
    fn new(chars: &[char], position: usize, expected: &'static str) -> Self {
        ParseError {
            position,
            expected,
            found: chars.get(position).copied(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.found {
            Some(c) => write!(
                f,
                "at position {}: expected {}, found '{}'",
                self.position, self.expected, c
            ),
            None => write!(
                f,
                "at position {}: expected {}, found end of input",
                self.position, self.expected
            ),
        }
    }
}

impl std::error::Error for ParseError {}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    arena: &'a mut Arena,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    fn err(&self, expected: &'static str) -> ParseError {
        ParseError::new(self.chars, self.pos, expected)
    }

    fn var(&mut self) -> Result<Name, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() => self.pos += 1,
            _ => return Err(self.err("a variable [a-z][0-9]*")),
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        Name::parse(&s).ok_or_else(|| ParseError::new(self.chars, start, "a variable with at most 7 digits"))
    }

    fn term(&mut self) -> Result<Id, ParseError> {
        self.skip_spaces();
        let c = self.peek();
        if c == Some(LAMBDA) || c == Some('\\') {
            self.pos += 1;
            self.skip_spaces();
            let name = self.var()?;
            self.skip_spaces();
            if self.peek() != Some('.') {
                return Err(self.err("'.'"));
            }
            self.pos += 1;
            let body = self.term()?;
            return Ok(self.arena.lam(name, body));
        }
        let mut result = self.atom()?;
        loop {
            self.skip_spaces();
            let c = self.peek();
            match c {
                None | Some(')') => return Ok(result),
                Some(LAMBDA) | Some('\\') => {
                    // an abstraction in argument position extends to the right end
                    let arg = self.term()?;
                    return Ok(self.arena.app(result, arg));
                }
                _ => {
                    let arg = self.atom()?;
                    result = self.arena.app(result, arg);
                }
            }
        }
    }

    fn atom(&mut self) -> Result<Id, ParseError> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let inner = self.term()?;
                self.skip_spaces();
                if self.peek() != Some(')') {
                    return Err(self.err("')'"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(c) if c.is_ascii_lowercase() => {
                let n = self.var()?;
                Ok(self.arena.var(n))
            }
            _ => Err(self.err("a variable, '(' or 'λ'")),
        }
    }
}

/// Whether `text` is exactly the canonical printing of the term it parses to.
pub fn is_canonical(text: &str) -> bool {
    let mut a = Arena::new();
    match a.parse(text) {
        Ok(t) => a.print(t) == text,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &mut Arena, s: &str) -> Id {
        a.parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn names() {
        for s in ["x", "y1", "z12", "a0", "b007", "q1234567"] {
            let n = Name::parse(s).unwrap();
            assert_eq!(n.to_string(), s);
            assert_eq!(n.char_len() as usize, s.len());
        }
        assert_eq!(Name::numbered(b'x', 1), Name::parse("x1").unwrap());
        assert_eq!(Name::numbered(b'y', 10), Name::parse("y10").unwrap());
        assert_ne!(Name::parse("x01").unwrap(), Name::parse("x1").unwrap());
        assert_ne!(Name::parse("x0").unwrap(), Name::parse("x").unwrap());
        assert!(Name::parse("x123456789").is_none());
        assert!(Name::parse("x12345678").is_some());
        // distinct mask bits for the common names
        let mut seen = std::collections::HashSet::new();
        for c in b'a'..=b'z' {
            assert!(seen.insert(Name::letter(c).bit()));
        }
        for c in [b'f', b'g', b'm', b'n', b'x', b'y', b'z'] {
            for k in 1..=5 {
                assert!(seen.insert(Name::numbered(c, k).bit()));
            }
        }
        assert!(!seen.contains(&OVERFLOW_BIT));
        assert_eq!(Name::numbered(b'x', 6).bit(), OVERFLOW_BIT);
    }

    #[test]
    fn print_round_trip() {
        let mut a = Arena::new();
        for s in [
            "x",
            "λx.x",
            "f x y",
            "f (x y)",
            "(λx.x) y",
            "λx.λy.x y",
            "(λx.x x) (λy.y)",
            "f ((λx.x) y)",
            "λz.z ((λx.x) z)",
            "x1 (y22 (λz3.z3)) q",
            "(λf.λx.f (f x)) (λy.y) a",
            "a (λx.x) b",
        ] {
            let t = parse(&mut a, s);
            assert_eq!(a.print(t), s);
            assert_eq!(a.print_len(t) as usize, s.chars().count(), "{s}");
            assert!(is_canonical(s));
        }
        // lenient input, canonical output
        for (s, want) in [
            ("\\x.x", "λx.x"),
            ("((f))   x", "f x"),
            ("(f x) y", "f x y"),
            ("(f x) (g y)", "f x (g y)"),
            ("f λx.x", "f (λx.x)"),
            ("(λx.x)", "λx.x"),
        ] {
            let t = parse(&mut a, s);
            assert_eq!(a.print(t), want);
            assert!(!is_canonical(s));
        }
        for bad in ["", "  ", "(x", "λ.x", "λx x", "x)", "X", "x (", "λx."] {
            assert!(a.parse(bad).is_err(), "{bad:?}");
        }
        let e = a.parse("(x").unwrap_err();
        assert_eq!(e.position, 2);
        assert_eq!(e.to_string(), "at position 2: expected ')', found end of input");
    }

    #[test]
    fn design_span_examples() {
        let mut a = Arena::new();
        for (s, span) in [
            ("f ((λx.x) y)", (3, 11)),
            ("(λx.x x) (λy.y)", (0, 15)),
            ("λz.z ((λx.x) z)", (6, 14)),
            ("x y", (0, 0)),
            ("λx.x", (0, 0)),
            ("λx1.x1 ((λy.y) y) ((λz.z) z)", (8, 16)),
        ] {
            let t = parse(&mut a, s);
            let (text, got) = a.print_with_span(t);
            assert_eq!(text, s);
            assert_eq!(got, span, "{s}");
            if span != (0, 0) {
                let sub: String = s
                    .chars()
                    .skip(span.0 as usize)
                    .take((span.1 - span.0) as usize)
                    .collect();
                let r = parse(&mut a, &sub);
                assert_eq!(a.print(r), sub);
                assert!(a.node(r).kind == Kind::App && a.node(a.node(r).a).kind == Kind::Lam);
            }
        }
    }

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
