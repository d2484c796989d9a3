//! The `lambda-gen` command line.
//!
//! Exit codes: 0 on success (and for `--help` / `--version`), 2 for bad arguments (a one-line
//! `error: ...` on stderr, nothing written), 1 when generation or writing fails.

use crate::families::Family;
use crate::generate::{
    shard_range, Options, DEFAULT_MAX_LEN, DEFAULT_MAX_STEPS, DEFAULT_MIN_LEN, DEFAULT_MIN_START, DEFAULT_MIN_STEPS,
};
use crate::run::{generate_to, RunError};
use crate::stats::Stats;
use crate::temp_file::TempFile;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

/// Exit code for bad arguments.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failed run (generation or I/O).
pub const EXIT_FAILURE: i32 = 1;

/// An error to report as `error: {message}` with exit code `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
    fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "lambda-gen",
    version,
    about = "Random untyped λ-terms and their normal-order reduction traces, as JSON Lines",
    long_about = "Random untyped λ-terms and their normal-order reduction traces, as JSON Lines.\n\n\
        The output is byte-identical to the Python reference lambdascope.generate for the same \
        arguments, whatever the number of threads."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write N_TRACES reduction traces to OUT.jsonl, one JSON record per reduction step.
    #[command(long_about = GENERATE_ABOUT)]
    Generate(GenerateArgs),
}

const GENERATE_ABOUT: &str = "\
Write N_TRACES reduction traces to OUT.jsonl, one JSON record per reduction step.

Trace i samples a λ-term of the --family (random by default) from a SplitMix64 stream seeded \
by (SEED, i) alone and reduces it in normal order (leftmost-outermost). A trace is kept when it \
reaches normal form within the caps: every term at most --max-len code points, at most \
--max-steps steps, at least --min-steps steps, some term longer than --min-len code points, some \
redex starting --min-start or more code points into its term. A \
dropped attempt is counted and the next attempt continues the same stream; a trace that has no \
kept attempt within 10000 attempts is an error (exit code 1).

Each kept trace is written as steps_total + 1 lines, in order:
  {\"trace_id\":\"SEED-I\",\"step_k\":K,\"steps_total\":T,\"term\":\"...\",\"target_span\":[S,E]}
where term is the canonical printing of the term at step K and [S,E) is the span of its \
next redex in Unicode code points ([0,0] at normal form, on the last line only). The trace_id \
is SEED-I for the random family and FAMILY-SEED-I (e.g. church-1-7) for the others.

The file is the same for every THREADS value and is the same as the Python reference \
(lambdascope.generate). It is written to a temporary file beside OUT.jsonl and renamed when \
complete, so a failed run leaves no partial file. While it runs, a progress bar is drawn on \
stderr if stderr is a terminal; at the end a summary goes to stderr: the family, traces and \
records written, attempts dropped by reason (too_long, too_many_steps, too_few_steps, too_short, near_start), a step histogram, elapsed time and records/s, the median number of \
steps, the share of traces with >= 8 steps, the share of distinct first terms, the share of \
reducible records whose redex does not start at 0, the first terms with nested and with \
shadowed binders, and the share of traces that needed an α-rename. --quiet turns both off.

Exit codes: 0 success, 1 generation or write failure, 2 bad arguments.";

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Output file (JSON Lines, UTF-8), or '-' for standard output. Its directory must exist;
    /// an existing file is replaced only when the run succeeds.
    #[arg(value_name = "OUT.jsonl")]
    out: OsString,

    /// Number of traces in the whole data set (at least 1). With --shard, only this shard's
    /// part of them is written.
    #[arg(value_name = "N_TRACES", value_parser = parse_n_traces)]
    n_traces: u64,

    /// Worker threads (at least 1). The output does not depend on it.
    #[arg(value_name = "THREADS", value_parser = parse_threads)]
    threads: usize,

    /// Seed of the data set: trace i draws from SplitMix64 seeded by (SEED, i) only, and its
    /// trace_id is "SEED-i" ("FAMILY-SEED-i" for a --family other than random).
    #[arg(long, value_name = "SEED", default_value_t = 0, value_parser = parse_seed, allow_hyphen_values = true)]
    seed: u64,

    /// Drop an attempt that has not reached normal form after K reduction steps
    /// (counted as too_many_steps).
    #[arg(long, value_name = "K", default_value_t = DEFAULT_MAX_STEPS)]
    max_steps: u32,

    /// Drop an attempt whose term, at any step, is longer than L code points
    /// (counted as too_long).
    #[arg(long, value_name = "L", default_value_t = DEFAULT_MAX_LEN)]
    max_len: u32,

    /// Drop an attempt that reaches normal form in fewer than M steps (counted as
    /// too_few_steps). Must not exceed --max-steps.
    #[arg(long, value_name = "M", default_value_t = DEFAULT_MIN_STEPS)]
    min_steps: u32,

    /// Keep only traces with a term longer than L code points: an attempt whose longest term
    /// (over all its steps) has at most L code points is dropped (counted as too_short). Must
    /// be less than --max-len; with 0 (the default) nothing is dropped for it. For suites of
    /// long terms.
    #[arg(long, value_name = "L", default_value_t = DEFAULT_MIN_LEN)]
    min_len: u32,

    /// Keep only traces with a redex far into its term: an attempt none of whose steps has a
    /// redex starting S or more code points in is dropped (counted as near_start). Must be
    /// less than --max-len; with 0 (the default) nothing is dropped for it. For training data
    /// with redexes inside long terms, which the default distribution rarely has.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_MIN_START)]
    min_start: u32,

    /// The family of first terms (the reduction, caps and drops are the same for all). Every
    /// family is deterministic by (SEED, i) and byte-identical to the Python reference.
    #[arg(long, value_name = "NAME", value_enum, default_value_t = Family::Random)]
    family: Family,

    /// Write only shard I of N (1 <= I <= N): trace indices [(I-1)*N_TRACES/N, I*N_TRACES/N)
    /// (integer division). The N shards, concatenated in order, equal the unsharded file;
    /// trace ids stay "SEED-index".
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,

    /// Also write the run summary as a JSON object to PATH (keys: family, traces, records, dropped,
    /// steps_histogram, elapsed_s, records_per_s, median_steps, frac_ge8_steps,
    /// frac_distinct_initial, frac_redex_not_at_0, traces_nested_binders,
    /// traces_shadowed_binders, frac_alpha_renamed).
    #[arg(long, value_name = "PATH")]
    summary_json: Option<PathBuf>,

    /// Print neither the progress bar nor the summary (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shard {
    i: u64,
    n: u64,
}

fn parse_n_traces(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("N_TRACES must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("N_TRACES must be a positive integer".into()),
    }
}

fn parse_seed(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("SEED must be an integer from 0 to {}", u64::MAX))
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("THREADS must be at least 1".into()),
        Ok(n) if n > 4096 => Err("THREADS must be at most 4096".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("THREADS must be a positive integer".into()),
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("expected I/N with integers 1 <= I <= N (e.g. 2/8), got '{s}'");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if i < 1 || n < 1 || i > n {
        return Err(bad());
    }
    Ok(Shard { i, n })
}

/// Reduce a clap error to one line: the lines of its first paragraph, without the `error:`
/// prefix, joined by spaces.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if parts.is_empty() {
                continue;
            }
            break;
        }
        parts.push(line.strip_prefix("error:").map(str::trim).unwrap_or(line).to_string());
    }
    let mut msg = parts.join(" ");
    if msg.is_empty() {
        msg = "invalid arguments".into();
    }
    format!("{msg} (see lambda-gen --help)")
}

/// Run `lambda-gen` with the process arguments.
pub fn try_main() -> Result<(), CliError> {
    run_with_args(std::env::args_os())
}

/// Run `lambda-gen` with the given arguments (the first is the program name).
pub fn run_with_args<I, T>(args: I) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli =
        match Cli::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    return Ok(());
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return Err(CliError::usage(
                    "missing command: lambda-gen generate OUT.jsonl N_TRACES THREADS [OPTIONS] (see lambda-gen --help)",
                )),
                _ => return Err(CliError::usage(one_line(&e))),
            },
        };
    match cli.command {
        Command::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> Result<(), CliError> {
    if args.min_steps > args.max_steps {
        return Err(CliError::usage(format!(
            "--min-steps ({}) must not exceed --max-steps ({}) (see lambda-gen --help)",
            args.min_steps, args.max_steps
        )));
    }
    if args.min_len >= args.max_len {
        return Err(CliError::usage(format!(
            "--min-len ({}) must be less than --max-len ({}) (see lambda-gen --help)",
            args.min_len, args.max_len
        )));
    }
    if args.min_start >= args.max_len {
        return Err(CliError::usage(format!(
            "--min-start ({}) must be less than --max-len ({}) (see lambda-gen --help)",
            args.min_start, args.max_len
        )));
    }
    let opts = Options {
        seed: args.seed,
        max_steps: args.max_steps,
        max_len: args.max_len,
        min_steps: args.min_steps,
        min_len: args.min_len,
        min_start: args.min_start,
        family: args.family,
    };
    let indices = shard_range(args.n_traces, args.shard.map(|s| (s.i, s.n)));
    let to_stdout = args.out == "-";
    let out_path = PathBuf::from(&args.out);
    if let Some(p) = &args.summary_json {
        if !to_stdout && p == &out_path {
            return Err(CliError::usage(
                "--summary-json must not be OUT (see lambda-gen --help)",
            ));
        }
    }

    // Create the temporary files first: an unwritable destination is a usage error, reported
    // before any work. They are removed on every early return (Drop).
    let out_file = if to_stdout {
        None
    } else {
        Some(TempFile::create(&out_path, "OUT").map_err(CliError::usage)?)
    };
    let summary_file = match &args.summary_json {
        Some(p) => Some(TempFile::create(p, "--summary-json").map_err(CliError::usage)?),
        None => None,
    };

    let show_progress = !args.quiet && io::stderr().is_terminal();
    let bar = if show_progress {
        let pb = ProgressBar::with_draw_target(Some(indices.end - indices.start), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} traces (eta {eta})",
        ) {
            pb.set_style(style);
        }
        Some(pb)
    } else {
        None
    };
    let progress = |n: u64| {
        if let Some(pb) = &bar {
            pb.set_position(n);
        }
    };

    let result = match &out_file {
        Some((_, file)) => generate_to(&opts, indices.clone(), args.threads, file, &progress),
        None => generate_to(&opts, indices.clone(), args.threads, io::stdout(), &progress),
    };
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let summary = result.map_err(|e| match e {
        RunError::Generation(g) => {
            CliError::failure(format!("{g}: loosen --max-len, --max-steps, --min-steps, --min-len or --min-start"))
        }
        other => CliError::failure(other.to_string()),
    })?;

    if let Some((tmp, mut file)) = summary_file {
        let text = summary.to_json();
        file.write_all(text.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| CliError::failure(format!("writing --summary-json: {e}")))?;
        drop(file);
        if let Some((out_tmp, out)) = out_file {
            drop(out);
            out_tmp
                .commit()
                .map_err(|e| CliError::failure(format!("renaming OUT into place: {e}")))?;
        }
        tmp.commit()
            .map_err(|e| CliError::failure(format!("renaming --summary-json into place: {e}")))?;
    } else if let Some((out_tmp, out)) = out_file {
        drop(out);
        out_tmp
            .commit()
            .map_err(|e| CliError::failure(format!("renaming OUT into place: {e}")))?;
    }

    if !args.quiet {
        report(&summary, &opts, &indices, args.threads);
    }
    Ok(())
}

fn report(summary: &Stats, opts: &Options, indices: &std::ops::Range<u64>, threads: usize) {
    let mut s = summary.render_text();
    s.push_str(&format!(
        "  family {}, seed {}, trace indices {}..{}, {} thread{}\n",
        opts.family.name(),
        opts.seed,
        indices.start,
        indices.end,
        threads,
        if threads == 1 { "" } else { "s" }
    ));
    let _ = io::stderr().write_all(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("1/3"), Ok(Shard { i: 1, n: 3 }));
        assert_eq!(parse_shard("3/3"), Ok(Shard { i: 3, n: 3 }));
        for bad in ["0/2", "3/2", "1", "a/b", "1/0", "/", "1/2/3", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            vec!["lambda-gen", "generate", "x.jsonl", "0", "2"],
            vec!["lambda-gen", "generate", "x.jsonl", "ten", "2"],
            vec!["lambda-gen", "generate", "x.jsonl", "10", "0"],
            vec!["lambda-gen", "generate", "x.jsonl", "10", "2", "--bogus"],
            vec!["lambda-gen", "generate", "x.jsonl"],
            vec!["lambda-gen", "generate", "x.jsonl", "10", "2", "--shard", "3/2"],
            vec!["lambda-gen", "frobnicate"],
            vec!["lambda-gen"],
        ] {
            let e = run_with_args(args.clone()).unwrap_err();
            assert_eq!(e.code, EXIT_USAGE, "{args:?}");
            assert!(!e.message.contains('\n'), "{args:?}: {}", e.message);
            assert!(!e.message.is_empty());
        }
    }
}
