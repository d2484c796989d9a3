//! `lambda_gen_rs`: random untyped λ-terms and their normal-order reduction traces, as JSON
//! Lines, byte-identical to the Python reference `lambdascope.generate`.
//!
//! * [`term`]: names, the term arena, parsing, canonical printing, redex spans, substitution,
//!   steps, binder shapes (one submodule each);
//! * [`rng`]: SplitMix64 and the per-trace streams;
//! * [`generate`]: the `random` sampler, the attempt loop with its caps, `shard_range`;
//! * [`families`]: the other term families (`--family`) and their samplers;
//! * [`record`]: the JSON encoding of a trace record;
//! * [`stats`]: the counts of a piece and, merged, the run summary;
//! * [`run`]: the parallel, ordered driver;
//! * [`cli`]: `lambda-gen` (arguments and commands), with `temp_file` (output written under a
//!   temporary name, renamed when complete) and `on_signal` (temporary files removed on
//!   SIGINT/SIGTERM/SIGHUP).

pub mod cli;
pub mod families;
pub mod generate;
pub mod record;
pub mod rng;
pub mod run;
pub mod stats;
pub mod term;

mod on_signal;
mod temp_file;
