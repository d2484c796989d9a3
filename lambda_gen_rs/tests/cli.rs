//! End-to-end tests of the `lambda-gen` binary.

use assert_cmd::Command;
use predicates::prelude::*;
use std::fs;
use std::path::Path;
use tempfile::TempDir;

fn lambda_gen() -> Command {
    Command::cargo_bin("lambda-gen").unwrap()
}

/// Run `generate` writing to `dir/name`; return the file's bytes.
fn generate_file(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    lambda_gen()
        .arg("generate")
        .arg(&out)
        .args(args)
        .arg("--quiet")
        .assert()
        .success()
        .stderr("");
    fs::read(&out).unwrap()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn output_is_identical_for_1_2_8_threads() {
    let dir = TempDir::new().unwrap();
    let a = generate_file(dir.path(), "t1.jsonl", &["3000", "1", "--seed", "5"]);
    let b = generate_file(dir.path(), "t2.jsonl", &["3000", "2", "--seed", "5"]);
    let c = generate_file(dir.path(), "t8.jsonl", &["3000", "8", "--seed", "5"]);
    assert!(!a.is_empty());
    assert!(a == b, "THREADS 1 and 2 differ");
    assert!(a == c, "THREADS 1 and 8 differ");
    // every trace is present, in order, steps complete
    let text = String::from_utf8(a).unwrap();
    let mut expect_trace = 0u64;
    let mut expect_step = 0u64;
    for line in text.lines() {
        let id = format!("\"trace_id\":\"5-{expect_trace}\",\"step_k\":{expect_step},");
        assert!(line.starts_with(&format!("{{{id}")), "{line}");
        let total: u64 = line
            .split("\"steps_total\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if expect_step == total {
            assert!(line.ends_with("\"target_span\":[0,0]}"), "{line}");
            expect_trace += 1;
            expect_step = 0;
        } else {
            assert!(!line.ends_with("\"target_span\":[0,0]}"), "{line}");
            expect_step += 1;
        }
    }
    assert_eq!(expect_trace, 3000);
    assert_eq!(expect_step, 0);
}

#[test]
fn matches_python_reference_golden_files() {
    let dir = TempDir::new().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let got = generate_file(dir.path(), "a.jsonl", &["15", "2", "--seed", "42"]);
    assert!(got == fs::read(data.join("python_seed42_n15.txt")).unwrap());
    let got = generate_file(
        dir.path(),
        "b.jsonl",
        &[
            "20",
            "3",
            "--seed",
            "9",
            "--max-steps",
            "12",
            "--max-len",
            "80",
            "--min-steps",
            "3",
        ],
    );
    assert!(got == fs::read(data.join("python_seed9_n20_caps.txt")).unwrap());
}

#[test]
fn shards_concatenate_to_the_whole() {
    let dir = TempDir::new().unwrap();
    let whole = generate_file(dir.path(), "whole.jsonl", &["500", "2", "--seed", "11"]);
    for n in [3u32, 7] {
        let mut cat = Vec::new();
        for i in 1..=n {
            let shard = format!("{i}/{n}");
            let name = format!("s{i}of{n}.jsonl");
            cat.extend(generate_file(
                dir.path(),
                &name,
                &["500", "2", "--seed", "11", "--shard", &shard],
            ));
        }
        assert!(cat == whole, "shards of {n} differ from the whole");
    }
    // more shards than traces: some shards are empty, the concatenation still matches
    let whole = generate_file(dir.path(), "small.jsonl", &["3", "1", "--seed", "2"]);
    let mut cat = Vec::new();
    for i in 1..=5 {
        let shard = format!("{i}/5");
        cat.extend(generate_file(
            dir.path(),
            "small_shard.jsonl",
            &["3", "1", "--seed", "2", "--shard", &shard],
        ));
    }
    assert!(cat == whole);
}

#[test]
fn stdout_output_matches_file_output() {
    let dir = TempDir::new().unwrap();
    let file = generate_file(dir.path(), "f.jsonl", &["200", "2", "--seed", "3"]);
    let out = lambda_gen()
        .args(["generate", "-", "200", "2", "--seed", "3", "--quiet"])
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    assert!(out == file);
}

#[test]
fn summary_on_stderr_and_json() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("o.jsonl");
    let js = dir.path().join("summary.json");
    let assert = lambda_gen()
        .arg("generate")
        .arg(&out)
        .args(["300", "2", "--seed", "4", "--summary-json"])
        .arg(&js)
        .assert()
        .success()
        .stdout("");
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    for needle in [
        "300 traces",
        "records",
        "too_long",
        "too_many_steps",
        "too_few_steps",
        "too_short",
        "near_start",
        "family random",
        "median steps",
        ">= 8 steps",
        "distinct initial terms",
        "nested binders",
        "shadowed binder",
        "α-rename",
        "records/s",
    ] {
        assert!(stderr.contains(needle), "summary lacks {needle:?}:\n{stderr}");
    }
    let records = fs::read_to_string(&out).unwrap().lines().count() as u64;
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&js).unwrap()).unwrap();
    assert_eq!(v["traces"], 300);
    assert_eq!(v["records"], records);
    assert_eq!(v["family"], "random");
    for key in ["too_long", "too_many_steps", "too_few_steps", "too_short", "near_start"] {
        assert!(v["dropped"][key].is_u64(), "{key}");
    }
    let hist_total: u64 = v["steps_histogram"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(hist_total, 300);
    for key in [
        "elapsed_s",
        "records_per_s",
        "median_steps",
        "frac_ge8_steps",
        "frac_distinct_initial",
        "frac_redex_not_at_0",
        "frac_alpha_renamed",
    ] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key}"));
        assert!(x >= 0.0, "{key}");
    }
    assert!(v["traces_nested_binders"].as_u64().unwrap() <= 300);
    assert!(v["traces_shadowed_binders"].as_u64().unwrap() <= 300);
    assert_eq!(dir_entries(dir.path()), ["o.jsonl", "summary.json"]);

    // --quiet: nothing on stderr
    lambda_gen()
        .arg("generate")
        .arg(dir.path().join("q.jsonl"))
        .args(["10", "1", "--quiet"])
        .assert()
        .success()
        .stderr("");
}

/// Each bad invocation: exit 2, one line `error: ...` on stderr, nothing left in the directory.
#[test]
fn bad_arguments_exit_2_with_one_line_and_leave_nothing() {
    let cases: &[&[&str]] = &[
        &["OUT", "0", "2"],
        &["OUT", "abc", "2"],
        &["OUT", "-5", "2"],
        &["OUT", "10", "0"],
        &["OUT", "10", "two"],
        &["OUT", "10", "2", "--shard", "3/2"],
        &["OUT", "10", "2", "--shard", "0/2"],
        &["OUT", "10", "2", "--shard", "1/0"],
        &["OUT", "10", "2", "--shard", "2"],
        &["OUT", "10", "2", "--shard", "a/b"],
        &["OUT", "10", "2", "--bogus"],
        &["OUT", "10", "2", "--seed", "-1"],
        &["OUT", "10", "2", "--min-steps", "9", "--max-steps", "8"],
        &["OUT", "10", "2", "--family", "nope"],
        &["OUT", "10", "2", "--family", ""],
        &["OUT", "10", "2", "--min-len", "192"],
        &["OUT", "10", "2", "--min-len", "50", "--max-len", "40"],
        &["OUT", "10", "2", "--min-len", "-1"],
        &["OUT", "10", "2", "--min-start", "192"],
        &["OUT", "10", "2", "--min-start", "40", "--max-len", "40"],
        &["OUT", "10", "2", "--min-start", "far"],
        &["OUT", "10"],
        &["OUT", "10", "2", "extra"],
        &["MISSING_DIR", "10", "2"],
        &["DIR", "10", "2"],
    ];
    for case in cases {
        let dir = TempDir::new().unwrap();
        let args: Vec<String> = case
            .iter()
            .map(|a| match *a {
                "OUT" => dir.path().join("out.jsonl").to_string_lossy().into_owned(),
                "MISSING_DIR" => dir.path().join("no/such/dir/out.jsonl").to_string_lossy().into_owned(),
                "DIR" => dir.path().to_string_lossy().into_owned(),
                other => other.to_string(),
            })
            .collect();
        let out = lambda_gen()
            .arg("generate")
            .args(&args)
            .assert()
            .code(2)
            .stdout("")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with("error: "), "{case:?}: {stderr:?}");
        assert!(
            stderr.ends_with('\n') && stderr.matches('\n').count() == 1,
            "{case:?}: not one line: {stderr:?}"
        );
        assert!(
            dir_entries(dir.path()).is_empty(),
            "{case:?} left {:?}",
            dir_entries(dir.path())
        );
    }
    // without a command
    for args in [&[][..], &["frobnicate"][..]] {
        let out = lambda_gen().args(args).assert().code(2).get_output().clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with("error: ") && stderr.matches('\n').count() == 1,
            "{stderr:?}"
        );
    }
}

#[test]
fn generation_failure_exits_1_and_keeps_old_output() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.jsonl");
    fs::write(&out, "old contents\n").unwrap();
    // no term of at most 3 code points needs 5 steps: every attempt is dropped
    let assert = lambda_gen()
        .arg("generate")
        .arg(&out)
        .args(["4", "2", "--max-len", "3", "--min-steps", "5", "--summary-json"])
        .arg(dir.path().join("s.json"))
        .assert()
        .code(1);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.starts_with("error: trace 0:"), "{stderr}");
    assert!(stderr.contains("10000 attempts"), "{stderr}");
    assert_eq!(fs::read_to_string(&out).unwrap(), "old contents\n");
    assert_eq!(dir_entries(dir.path()), ["out.jsonl"]);
}

#[test]
fn help_explains_every_argument() {
    let out = lambda_gen()
        .args(["generate", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for needle in [
        "OUT.jsonl",
        "N_TRACES",
        "THREADS",
        "--seed",
        "--max-steps",
        "--max-len",
        "--min-steps",
        "--shard",
        "--summary-json",
        "--quiet",
        "--family",
        "--min-len",
        "too_short",
        "--min-start",
        "near_start",
        "FAMILY-SEED-I",
        "random:",
        "church:",
        "bool:",
        "pairs:",
        "combinators:",
        "target_span",
        "code points",
        "Exit codes",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
    lambda_gen()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("generate"));
    lambda_gen()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains("lambda-gen"));
}

#[test]
fn replaces_existing_output_on_success() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.jsonl");
    fs::write(&out, "old\n").unwrap();
    let got = generate_file(dir.path(), "out.jsonl", &["5", "1"]);
    assert!(got.starts_with(b"{\"trace_id\":\"0-0\",\"step_k\":0,"));
    assert_eq!(dir_entries(dir.path()), ["out.jsonl"]);
}

#[cfg(unix)]
#[test]
fn interrupted_run_leaves_no_temp_file() {
    use std::time::{Duration, Instant};
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.jsonl");
    // slow settings (long traces only), so that the run is still going when the signal comes
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lambda-gen"))
        .arg("generate")
        .arg(&out)
        .args(["200000", "2", "--min-steps", "40", "--quiet"])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while dir_entries(dir.path()).is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let entries = dir_entries(dir.path());
    assert_eq!(entries.len(), 1);
    assert!(entries[0].starts_with(".out.jsonl.tmp."), "{entries:?}");
    std::thread::sleep(Duration::from_millis(50));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    assert!(dir_entries(dir.path()).is_empty(), "{:?}", dir_entries(dir.path()));
}

const FAMILIES: [&str; 5] = ["random", "church", "bool", "pairs", "combinators"];

#[test]
fn unknown_family_is_a_usage_error_that_lists_the_families() {
    let dir = TempDir::new().unwrap();
    let out = lambda_gen()
        .arg("generate")
        .arg(dir.path().join("o.jsonl"))
        .args(["10", "1", "--family", "lambda"])
        .assert()
        .code(2)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.matches('\n').count() == 1,
        "{stderr:?}"
    );
    assert!(stderr.contains("'lambda'") && stderr.contains("--family"), "{stderr}");
    for f in FAMILIES {
        assert!(stderr.contains(f), "{f} not listed: {stderr}");
    }
    assert!(dir_entries(dir.path()).is_empty());
}

/// `"trace_id":"..."` of a record line.
fn trace_id_of(line: &str) -> &str {
    line.split('"').nth(3).unwrap()
}

/// Check a trace file with the crate's own term code: every term is canonical, its span is the
/// normal-order redex, each term is the step of the one before, the steps are contiguous and
/// the last one is in normal form (the rules of `lambdascope check`, minus α-equivalence: the
/// generator's next term is the step itself). Returns (traces, longest term of each trace).
fn validate(text: &str, id_prefix: &str) -> (u64, Vec<u32>) {
    use lambda_gen_rs::term::{is_canonical, Arena};
    let mut traces = 0;
    let mut longest = Vec::new();
    let mut prev: Option<(String, String, u64, u64)> = None; // id, term, step_k, steps_total
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["trace_id"].as_str().unwrap().to_string();
        assert!(id.starts_with(id_prefix), "{line}");
        let k = v["step_k"].as_u64().unwrap();
        let total = v["steps_total"].as_u64().unwrap();
        let term = v["term"].as_str().unwrap().to_string();
        let span = (
            v["target_span"][0].as_u64().unwrap() as u32,
            v["target_span"][1].as_u64().unwrap() as u32,
        );
        assert!(is_canonical(&term), "{line}");
        let mut a = Arena::new();
        let t = a.parse(&term).unwrap();
        assert_eq!(a.redex_span(t), span, "{line}");
        assert_eq!(span == (0, 0), k == total, "{line}");
        let len = term.chars().count() as u32;
        match &prev {
            Some((pid, pterm, pk, ptotal)) if *pk < *ptotal => {
                assert_eq!((pid, *pk + 1, *ptotal), (&id, k, total), "{line}");
                let mut b = Arena::new();
                let p = b.parse(pterm).unwrap();
                let next = b.step(p, &mut 0).unwrap();
                assert_eq!(b.print(next), term, "{line}");
                let l = longest.last_mut().unwrap();
                *l = len.max(*l);
            }
            _ => {
                assert_eq!(k, 0, "{line}");
                if let Some((pid, ..)) = &prev {
                    assert_ne!(pid, &id, "{line}");
                }
                traces += 1;
                longest.push(len);
            }
        }
        prev = Some((id, term, k, total));
    }
    let (_, _, k, total) = prev.unwrap();
    assert_eq!(k, total);
    (traces, longest)
}

#[test]
fn every_family_writes_valid_traces_with_its_trace_ids() {
    let dir = TempDir::new().unwrap();
    for f in FAMILIES {
        let bytes = generate_file(
            dir.path(),
            &format!("{f}.jsonl"),
            &["300", "2", "--seed", "3", "--family", f],
        );
        let text = String::from_utf8(bytes).unwrap();
        let prefix = if f == "random" {
            "3-".to_string()
        } else {
            format!("{f}-3-")
        };
        let (traces, _) = validate(&text, &prefix);
        assert_eq!(traces, 300, "{f}");
        assert_eq!(trace_id_of(text.lines().next().unwrap()), format!("{prefix}0"));
        assert_eq!(trace_id_of(text.lines().last().unwrap()), format!("{prefix}299"));
    }
    // the default family is random: the same bytes as without --family
    let plain = generate_file(dir.path(), "plain.jsonl", &["300", "2", "--seed", "3"]);
    assert!(plain == fs::read(dir.path().join("random.jsonl")).unwrap());
}

#[test]
fn families_do_not_depend_on_threads_and_shards_concatenate() {
    let dir = TempDir::new().unwrap();
    for f in ["church", "combinators"] {
        let one = generate_file(dir.path(), "one.jsonl", &["400", "1", "--seed", "8", "--family", f]);
        let three = generate_file(dir.path(), "three.jsonl", &["400", "3", "--seed", "8", "--family", f]);
        assert!(one == three, "{f}");
        let mut cat = Vec::new();
        for i in 1..=3 {
            let shard = format!("{i}/3");
            cat.extend(generate_file(
                dir.path(),
                "s.jsonl",
                &["400", "2", "--seed", "8", "--family", f, "--shard", &shard],
            ));
        }
        assert!(cat == one, "{f}");
    }
}

#[test]
fn min_len_drops_are_counted_as_too_short() {
    let dir = TempDir::new().unwrap();
    for f in ["random", "bool"] {
        let out = dir.path().join(format!("{f}.jsonl"));
        let js = dir.path().join(format!("{f}.json"));
        lambda_gen()
            .arg("generate")
            .arg(&out)
            .args([
                "200",
                "2",
                "--seed",
                "6",
                "--family",
                f,
                "--min-len",
                "90",
                "--quiet",
                "--summary-json",
            ])
            .arg(&js)
            .assert()
            .success();
        let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&js).unwrap()).unwrap();
        assert_eq!(v["family"], f);
        assert_eq!(v["traces"], 200);
        assert!(v["dropped"]["too_short"].as_u64().unwrap() > 0, "{f}: {v}");
        let (traces, longest) = validate(&fs::read_to_string(&out).unwrap(), "");
        assert_eq!(traces, 200);
        assert!(longest.iter().all(|&l| l > 90), "{f}");
        // without --min-len nothing is too_short, and some trace has only short terms
        lambda_gen()
            .arg("generate")
            .arg(&out)
            .args(["200", "2", "--seed", "6", "--family", f, "--quiet", "--summary-json"])
            .arg(&js)
            .assert()
            .success();
        let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&js).unwrap()).unwrap();
        assert_eq!(v["dropped"]["too_short"], 0);
        let (_, longest) = validate(&fs::read_to_string(&out).unwrap(), "");
        assert!(longest.iter().any(|&l| l <= 90), "{f}");
    }
}

#[test]
fn min_start_drops_are_counted_as_near_start() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("far.jsonl");
    let js = dir.path().join("far.json");
    lambda_gen()
        .arg("generate")
        .arg(&out)
        .args(["150", "2", "--seed", "8", "--min-start", "35", "--quiet", "--summary-json"])
        .arg(&js)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&js).unwrap()).unwrap();
    assert_eq!(v["traces"], 150);
    assert!(v["dropped"]["near_start"].as_u64().unwrap() > 0, "{v}");
    let text = fs::read_to_string(&out).unwrap();
    let mut far: std::collections::BTreeMap<String, u64> = Default::default();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let start = r["target_span"][0].as_u64().unwrap();
        let e = far.entry(r["trace_id"].as_str().unwrap().to_string()).or_default();
        *e = (*e).max(start);
    }
    assert_eq!(far.len(), 150);
    assert!(far.values().all(|&s| s >= 35), "{far:?}");
}
