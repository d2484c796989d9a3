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
//! Canonical printing (docs/DESIGN.md):
//!
//! ```text
//! term := 'λ' var '.' term | app
//! app  := atom (' ' atom)*        -- left-associative
//! atom := var | '(' term ')'
//! var  := [a-z][0-9]*
//! ```
//!
//! Spans are `[start, end)` in Unicode code points (Python `str` indices), never UTF-8 bytes.
//!
//! The submodules, by concept (everything public is re-exported here):
//!
//! * `names`: [`Name`], a variable name packed in 32 bits, and its free-variable mask bit;
//! * `arena`: [`Node`], [`Kind`] and the [`Arena`] with its constructors;
//! * `print`: canonical printing (plain and memoised) and the redex span;
//! * `free_vars`: free-variable tests on the cached masks;
//! * `reduce`: capture-avoiding substitution and the normal-order step;
//! * `shapes`: the binder shapes counted in the run summary;
//! * `parse`: the lenient parser and [`is_canonical`].

mod arena;
mod free_vars;
mod names;
mod parse;
mod print;
mod reduce;
mod shapes;

pub use arena::{Arena, Kind, Node};
pub use names::Name;
pub use parse::{is_canonical, ParseError};
pub use print::MEMO_MIN_BYTES;

/// A node's index in its [`Arena`].
pub type Id = u32;

/// The λ character (two bytes in UTF-8, one code point).
pub const LAMBDA: char = 'λ';

#[cfg(test)]
mod test_support {
    use super::{Arena, Id};

    /// Parse `s`, panicking with the parse error.
    pub fn parse(a: &mut Arena, s: &str) -> Id {
        a.parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
}
