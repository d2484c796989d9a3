//! The lenient parser (like `terms.parse`) and the canonical-text check.

use super::{Arena, Id, Name, LAMBDA};
use std::fmt;

impl Arena {
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
    use crate::term::test_support::parse;

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
}
