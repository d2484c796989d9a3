//! `lambda_gen_rs`: random untyped λ-terms and their normal-order reduction traces, as JSON
//! Lines, byte-identical to the Python reference `lambdascope.generate`.
//!
//! * [`term`]: the term arena, parsing, canonical printing, redex spans, substitution, steps;
//! * [`rng`]: SplitMix64 and the per-trace streams;
//! * [`generate`]: the samplers, the attempt loop with its caps, the record format;
//! * [`stats`]: the run summary; [`run`]: the parallel, ordered driver; [`cli`]: `lambda-gen`.

pub mod cli;
pub mod generate;
pub mod record;
pub mod rng;
pub mod run;
pub mod stats;
pub mod term;

mod on_signal;
mod temp_file;
