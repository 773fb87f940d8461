//! `scripts/tune-host.sh` against a fake /proc, /sys and /etc tree (TUNE_HOST_ROOT): it only
//! reads without `--apply`, and with `--apply` changes the run-time settings it reports.

use std::fs;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/tune-host.sh");

fn fake_host(root: &Path) {
    for d in [
        "proc/sys/vm",
        "sys/kernel/mm/transparent_hugepage",
        "sys/devices/system/cpu/cpu0/cpufreq",
        "etc/systemd",
        "run",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let w = |p: &str, s: &str| fs::write(root.join(p), s).unwrap();
    w(
        "proc/cmdline",
        "quiet isolcpus=managed_irq,domain,2-3 nohz_full=2-3\n",
    );
    w("proc/sys/vm/nr_hugepages", "0\n");
    w(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    w(
        "sys/kernel/mm/transparent_hugepage/defrag",
        "always defer [madvise] never\n",
    );
    w(
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "powersave\n",
    );
    w("etc/systemd/logind.conf", "[Login]\n#RemoveIPC=yes\n");
    w("run/irqbalance.pid", "1\n");
}

/// Every file of the tree with its contents, to compare before and after.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    fs::read_to_string(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn run(root: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("TUNE_HOST_ROOT", root)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn check_mode_explains_and_changes_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    fake_host(dir.path());
    let before = tree(dir.path());
    let (ok, out) = run(dir.path(), &["--cores", "2-3", "--hugepages", "64"]);
    assert!(ok, "{out}");
    assert_eq!(
        tree(dir.path()),
        before,
        "check mode wrote something:\n{out}"
    );
    assert!(
        out.contains("[ OK ] isolcpus=managed_irq,domain,2-3"),
        "{out}"
    );
    assert!(out.contains("[WARN] rcu_nocbs not set"), "{out}");
    assert!(out.contains("not on 'performance'"), "{out}");
    assert!(out.contains("THP enabled=always"), "{out}");
    assert!(out.contains("irqbalance running"), "{out}");
    assert!(out.contains("RemoveIPC=yes (default)"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    let (strict_ok, _) = run(dir.path(), &["--strict"]);
    assert!(!strict_ok, "--strict must fail when a check warns");
}

#[test]
fn apply_mode_fixes_the_run_time_settings() {
    let dir = tempfile::TempDir::new().unwrap();
    let r = dir.path();
    fake_host(r);
    let (ok, out) = run(r, &["--apply", "--cores", "2-3", "--hugepages", "64"]);
    assert!(ok, "{out}");
    let read = |p: &str| fs::read_to_string(r.join(p)).unwrap();
    assert_eq!(
        read("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").trim(),
        "performance"
    );
    assert_eq!(
        read("sys/kernel/mm/transparent_hugepage/enabled").trim(),
        "never"
    );
    assert_eq!(read("proc/sys/vm/nr_hugepages").trim(), "64");
    assert!(read("etc/default/irqbalance").contains("IRQBALANCE_BANNED_CPULIST=2-3"));
    assert!(read("etc/systemd/logind.conf.d/50-hedge-removeipc.conf").contains("RemoveIPC=no"));
    assert_eq!(
        read("proc/cmdline").trim(),
        "quiet isolcpus=managed_irq,domain,2-3 nohz_full=2-3",
        "boot parameters are never written"
    );
    // Now clean, except the boot parameter it only prints.
    let (_, again) = run(r, &["--cores", "2-3", "--hugepages", "64"]);
    assert_eq!(again.matches("[WARN]").count(), 1, "{again}");
}
