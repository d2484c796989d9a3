//! The parallel driver.
//!
//! The trace indices are cut into pieces of consecutive indices. Each of THREADS workers (jobs
//! on a local rayon pool) repeatedly claims the next piece, builds its records into a buffer,
//! and hands the buffer to an in-order writer: whichever worker holds the piece that is next
//! in index order writes it, and every later piece that is already done, to the output. There
//! is no barrier between pieces and no extra writer thread, so THREADS busy threads keep
//! THREADS cores busy, and workers never get more than a window of pieces ahead of the output.
//!
//! Every trace depends on (seed, index) only, so the bytes written do not depend on the number
//! of threads, on the piece size, or on which thread builds which piece.

use crate::generate::{GenerationError, Generator, Options};
use crate::stats::Stats;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Most traces per piece: the unit of parallel work and of the ordered write.
pub const PIECE_TRACES: u64 = 256;
/// Fewest traces per piece (small runs use small pieces so that every thread gets work).
pub const MIN_PIECE_TRACES: u64 = 16;
/// Stack size of the worker threads (recursion depth grows with `max_len`).
pub const WORKER_STACK: usize = 64 << 20;

#[derive(Debug)]
pub enum RunError {
    Generation(GenerationError),
    Io(io::Error),
    ThreadPool(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Generation(e) => write!(f, "{e}"),
            RunError::Io(e) => write!(f, "writing the output: {e}"),
            RunError::ThreadPool(e) => write!(f, "starting the worker threads: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Build the traces of `indices` with generator `g`, appending their records to `out`.
pub fn build_piece(
    g: &mut Generator,
    opts: &Options,
    indices: Range<u64>,
    out: &mut Vec<u8>,
) -> Result<Stats, GenerationError> {
    let mut st = Stats::default();
    st.distinct_initial.reserve((indices.end - indices.start) as usize);
    for i in indices {
        let facts = g.write_trace(opts, i, &mut st.dropped, out)?;
        st.add(&facts);
    }
    Ok(st)
}

/// The piece size for `n` traces on `threads` threads.
pub fn piece_size(n: u64, threads: usize) -> u64 {
    (n / (threads as u64 * 8)).clamp(MIN_PIECE_TRACES, PIECE_TRACES)
}

/// The queue of finished pieces (one lock, held briefly).
struct Queue {
    /// The next piece to write.
    next: u64,
    /// Finished pieces waiting for the ones before them.
    done: BTreeMap<u64, (Vec<u8>, Stats)>,
    /// Whether a worker is writing pieces right now (only one does, in order).
    writing: bool,
    /// Emptied buffers, for reuse.
    spare: Vec<Vec<u8>>,
    /// The generation error of the lowest failing trace index.
    gen_error: Option<GenerationError>,
}

/// The output side, used only by the worker that is writing (so never contended).
struct Sink<W> {
    out: W,
    summary: Stats,
    io_error: Option<io::Error>,
}

/// Generate the traces `indices` of `opts.seed` with `threads` worker threads and write their
/// records, in index order, to `out`. `progress` is called with the number of traces written
/// so far, after each piece.
pub fn generate_to<W: Write + Send>(
    opts: &Options,
    indices: Range<u64>,
    threads: usize,
    out: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Stats, RunError> {
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(WORKER_STACK)
        .thread_name(|i| format!("lambda-gen-{i}"))
        .build()
        .map_err(|e| RunError::ThreadPool(e.to_string()))?;

    let n = indices.end.saturating_sub(indices.start);
    let size = piece_size(n, threads);
    let n_pieces = n.div_ceil(size);
    let window = (threads as u64 * 4).max(8);
    let claim = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let queue = Mutex::new(Queue {
        next: 0,
        done: BTreeMap::new(),
        writing: false,
        spare: Vec::new(),
        gen_error: None,
    });
    let advanced = Condvar::new();
    let sink = Mutex::new(Sink {
        out,
        summary: Stats::default(),
        io_error: None,
    });

    let worker = || {
        let mut g = Generator::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let p = claim.fetch_add(1, Ordering::Relaxed);
            if p >= n_pieces {
                return;
            }
            // stay within `window` pieces of the output; take a spare buffer
            let mut buf = {
                let mut q = queue.lock().unwrap();
                while p >= q.next + window && !stop.load(Ordering::Relaxed) {
                    q = advanced.wait(q).unwrap();
                }
                q.spare.pop().unwrap_or_default()
            };
            let lo = indices.start + p * size;
            let hi = indices.end.min(lo + size);
            buf.clear();
            let built = build_piece(&mut g, opts, lo..hi, &mut buf);

            let mut q = queue.lock().unwrap();
            match built {
                Ok(stats) => {
                    q.done.insert(p, (buf, stats));
                }
                Err(e) => {
                    if q.gen_error.as_ref().is_none_or(|old| e.index < old.index) {
                        q.gen_error = Some(e);
                    }
                    stop.store(true, Ordering::Relaxed);
                    advanced.notify_all();
                    return;
                }
            }
            if q.writing {
                continue; // the worker that is writing will write this piece too
            }
            q.writing = true;
            loop {
                let next = q.next;
                let Some((mut buf, stats)) = q.done.remove(&next) else {
                    break;
                };
                q.next += 1;
                advanced.notify_all();
                drop(q);
                {
                    let mut s = sink.lock().unwrap();
                    if s.io_error.is_none() {
                        if let Err(e) = s.out.write_all(&buf) {
                            s.io_error = Some(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    s.summary.merge(stats);
                    progress(s.summary.traces);
                }
                buf.clear();
                q = queue.lock().unwrap();
                q.spare.push(buf);
            }
            q.writing = false;
        }
    };

    pool.scope(|s| {
        for _ in 0..threads {
            s.spawn(|_| worker());
        }
    });

    let q = queue.into_inner().unwrap();
    if let Some(e) = q.gen_error {
        return Err(RunError::Generation(e));
    }
    let mut s = sink.into_inner().unwrap();
    if let Some(e) = s.io_error {
        return Err(RunError::Io(e));
    }
    s.out.flush().map_err(RunError::Io)?;
    let mut summary = s.summary;
    summary.family = opts.family;
    summary.elapsed_s = start.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_independent_of_threads() {
        let opts = Options {
            seed: 3,
            ..Options::default()
        };
        let mut outs = Vec::new();
        for threads in [1, 2, 3] {
            let mut buf = Vec::new();
            let s = generate_to(&opts, 0..700, threads, &mut buf, &|_| {}).unwrap();
            assert_eq!(s.traces, 700);
            assert_eq!(s.records as usize, buf.iter().filter(|&&b| b == b'\n').count());
            outs.push(buf);
        }
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0], outs[2]);
        // a sub-range is the matching slice of lines
        let mut part = Vec::new();
        generate_to(&opts, 300..450, 2, &mut part, &|_| {}).unwrap();
        let text = String::from_utf8(outs[0].clone()).unwrap();
        let want: String = text
            .lines()
            .filter(|l| {
                let id: u64 = l.split('"').nth(3).unwrap().split('-').nth(1).unwrap().parse().unwrap();
                (300..450).contains(&id)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(String::from_utf8(part).unwrap(), want);
    }

    #[test]
    fn generation_error_reports_first_index() {
        // no term of at most 3 code points reduces in >= 5 steps
        let opts = Options {
            seed: 0,
            max_steps: 64,
            max_len: 3,
            min_steps: 5,
            ..Options::default()
        };
        let err = generate_to(&opts, 10..12, 2, io::sink(), &|_| {}).unwrap_err();
        match err {
            RunError::Generation(e) => assert_eq!(e.index, 10),
            other => panic!("{other}"),
        }
    }
}
