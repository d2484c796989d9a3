//! Variable names `[a-z][0-9]*`, packed in 32 bits, and their bits in the free-variable mask.

use std::fmt;

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
pub(super) const OVERFLOW_BIT: u32 = 63;

impl Name {
    /// The name field of a node that has none (an application); not a valid name.
    pub(super) const NONE: Name = Name(0);

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
    pub(super) fn code(self) -> u32 {
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
    pub(super) fn bit(self) -> u32 {
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
    pub(super) fn clear_mask(self) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
