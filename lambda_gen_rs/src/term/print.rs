//! Canonical printing (plain, and memoised across the terms of a trace) and the span of the
//! normal-order redex in the printed text.

use super::{Arena, Id, Kind, Name};

/// Nodes whose text is at least this many bytes are memoised by [`Arena::print_memo`].
pub const MEMO_MIN_BYTES: u32 = 8;

/// The UTF-8 encoding of [`super::LAMBDA`].
const LAMBDA_UTF8: [u8; 2] = [0xCE, 0xBB];

impl Arena {
    /// The canonical printed length of `t` in code points.
    #[inline]
    pub fn print_len(&self, t: Id) -> u32 {
        self.node(t).len
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::test_support::parse;

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
}
