//! `hedgectl greeks` run as a process: CSV in, CSV out, bad rows on stderr, exit code.

use std::io::Write;
use std::process::{Command, Stdio};

const HEADER: &str = "model,type,underlying,strike,t_years,vol,rate,div";

fn run_stdin(input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .arg("greeks")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hedgectl starts");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("hedgectl finishes");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn good_rows_from_stdin_give_price_and_greeks_and_exit_zero() {
    let input =
        format!("{HEADER}\nblack76,call,100,100,1,0.2,0,0\nbsm,put,100,95,0.5,0.3,0.05,0.02\n");
    let (code, out, err) = run_stdin(&input);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("{HEADER},price,delta,gamma,vega,theta"));
    assert_eq!(lines.len(), 3);
    let cols: Vec<f64> = lines[1]
        .split(',')
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    // ATM Black-76, F = K = 100, 20% vol, 1 year, r = 0: 100 (2 N(0.1) - 1).
    assert!((cols[6] - 7.965_567_455_405_804).abs() < 1e-12);
    assert!((cols[7] - 0.539_827_837_277_029).abs() < 1e-12);
    // Vega per 1.00 vol: F n(d1) sqrt(T).
    assert!((cols[9] - 39.695_254_747_701_18).abs() < 1e-9);
}

#[test]
fn bad_rows_are_named_on_stderr_others_still_written_exit_nonzero() {
    let input = format!(
        "{HEADER}\nbsm,call,100,100,1,0.2,0,0\nbsm,call,abc,100,1,0.2,0,0\n\
         black76,straddle,100,100,1,0.2,0,0\nbsm,put,100,100,-1,0.2,0,0\n\
         bsm,put,100,100,1,0.2\nblack76,put,100,120,0.25,0.5,0.01,0\n"
    );
    let (code, out, err) = run_stdin(&input);
    assert_ne!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out
        .lines()
        .nth(2)
        .unwrap()
        .starts_with("black76,put,100,120,"));
    let errs: Vec<&str> = err.lines().collect();
    let want = [
        ("row 2", "underlying"),
        ("row 3", "type"),
        ("row 4", "time"),
        ("row 5", "columns"),
    ];
    assert_eq!(errs.len(), want.len(), "{err}");
    for (e, (row, what)) in errs.iter().zip(want) {
        assert!(e.contains(row) && e.contains(what), "{err}");
    }
}

#[test]
fn input_file_is_read_and_wrong_header_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("in.csv");
    std::fs::write(
        &path,
        format!("{HEADER}\nblack76,put,9000,8000,0.25,0.8,0,0\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["greeks", "--input"])
        .arg(&path)
        .output()
        .expect("hedgectl runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("black76,put,9000,8000,0.25,0.8,0,0,"));

    std::fs::write(&path, "a,b,c\n1,2,3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["greeks", "--input"])
        .arg(&path)
        .output()
        .expect("hedgectl runs");
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("header"));
}
