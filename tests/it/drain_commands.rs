//! The drain hook run by dash with the awkward commands people write in
//! `gracehook.io/drain-command`: every command a shell accepts runs, and the
//! hook still waits its whole delay and timeout and ends with 0; a command
//! with open quoting, which no shell accepts, is refused naming the
//! annotation. The check and its CEL twin accept the same commands.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use gracehook::planner::annotations::{CLOSED_QUOTING, quoting_closed};
use gracehook::planner::self_exit::{SELF_EXITING, exits_by_itself};
use gracehook::planner::{Hook, PlanError};
use proptest::prelude::*;
use serde_json::json;

use crate::common::{plan_of, web_pod};
use gracehook::planner::settings::{NamespaceDefaults, Settings};

const DELAY: u64 = 1;
const TIMEOUT: u64 = 1;

/// A directory of its own per case, with `sh` being dash on the PATH, so
/// that the hook's inner `sh -c "$1"` is dash too.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gracehook-drain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/dash", dir.join("bin/sh")).unwrap();
    dir
}

/// Runs the hook gracehook writes for `command` as the kubelet would, with
/// `$MARK` naming a file the command may create; how it ended, how long it
/// took, and whether the command ran.
fn run_hook(name: &str, command: &str) -> (ExitStatus, Duration, bool) {
    let dir = scratch(name);
    let argv = Hook::Shell {
        delay: DELAY,
        command: Some((command.to_string(), TIMEOUT)),
    }
    .argv();
    assert_eq!(&argv[..2], ["sh", "-c"]);
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let started = Instant::now();
    let mut child = Command::new("dash")
        .args(&argv[1..])
        .env("PATH", path)
        .env("MARK", dir.join("ran"))
        .current_dir(&dir)
        .process_group(0)
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    // A command still running (one that never returns) goes with its group,
    // as it would with its container.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let ran = wait_for_file(&dir.join("ran"));
    let _ = std::fs::remove_dir_all(&dir);
    (status, elapsed, ran)
}

/// A backgrounded command may write its mark a moment after the hook ends.
fn wait_for_file(path: &Path) -> bool {
    for _ in 0..50 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn every_command_a_shell_accepts_runs_and_gets_the_whole_delay_and_timeout() {
    // (name, command, whether it creates $MARK)
    let cases: &[(&str, &str, bool)] = &[
        ("plain", r#"touch "$MARK""#, true),
        ("trailing-semicolon", r#"touch "$MARK";"#, true),
        ("trailing-ampersand", r#"touch "$MARK" &"#, true),
        (
            "comment",
            r#"touch "$MARK" # wait for the LB; don't rush"#,
            true,
        ),
        (
            "quotes",
            r#"echo 'single' "double \"escaped\"" it\'s; touch "$MARK""#,
            true,
        ),
        ("and-or", r#"false && echo no || touch "$MARK""#, true),
        (
            "pipe",
            r#"echo drain | cat >/dev/null; touch "$MARK""#,
            true,
        ),
        ("newline", "echo first\ntouch \"$MARK\"\n", true),
        (
            "expansion",
            r#"touch "${MARK}"; echo $HOME $(true) >/dev/null"#,
            true,
        ),
        ("fails", r#"touch "$MARK"; exit 3"#, true),
        ("never-returns", r#"touch "$MARK"; exec sleep 600"#, true),
        ("exit-at-once", "exit 0", false),
        ("syntax-error-the-shell-finds", "fi )", false),
    ];
    let handles: Vec<_> = cases
        .iter()
        .map(|&(name, command, creates)| {
            std::thread::spawn(move || (name, creates, run_hook(name, command)))
        })
        .collect();
    let least = Duration::from_secs(DELAY + TIMEOUT);
    for handle in handles {
        let (name, creates, (status, elapsed, ran)) = handle.join().unwrap();
        assert_eq!(status.code(), Some(0), "{name}: {status:?}");
        assert!(
            elapsed >= least,
            "{name}: the hook ended after {elapsed:?}, before its delay and timeout ({least:?})"
        );
        // Bounded by the delay and timeout, not by the command: generous
        // slack for a loaded machine, far below the 600 s command.
        assert!(
            elapsed < least + Duration::from_secs(20),
            "{name}: {elapsed:?}"
        );
        assert_eq!(ran, creates, "{name}: the command ran: {ran}");
    }
}

#[test]
fn a_command_with_open_quoting_is_refused_naming_the_annotation() {
    for command in [
        "echo 'unclosed",
        r#"echo "unclosed"#,
        r#"echo "escaped \""#,
        "nginx -s quit \\",
    ] {
        let pod = web_pod(json!({ "gracehook.io/drain-command": command }));
        let error = gracehook::planner::plan(
            &crate::common::pod(pod),
            Some("shop"),
            &Settings::default(),
            &NamespaceDefaults::default(),
        )
        .unwrap_err();
        let PlanError::Annotation(error) = &error else {
            panic!("{command}: {error}")
        };
        let text = error.to_string();
        assert!(text.contains("gracehook.io/drain-command"), "{text}");
        assert!(text.contains("quote is left open"), "{text}");
    }
    for command in [
        "echo '#' \"a'b\" \\' # it's fine",
        "a \\\nb",
        "nginx -s quit;",
    ] {
        let pod = web_pod(json!({ "gracehook.io/drain-command": command }));
        let plan = plan_of(&pod, &Settings::default());
        assert_eq!(
            plan.containers[0].drain_command.as_deref(),
            Some(command.trim())
        );
    }
}

proptest! {
    /// The webhook's check and the admission policies' RE2 (run here by the
    /// regex crate, whose syntax RE2's is for this pattern) agree.
    #[test]
    fn the_self_exit_check_and_its_regex_agree(
        command in "( |\t|\n|/usr/sbin/|nginx|apachectl|apache2ctl|httpd|kill|-k|-s|-c|x|quit|graceful-stop|graceful|-QUIT|-SIGWINCH|QUIT|-3|-28|1|7){0,6}"
    ) {
        let re = regex::Regex::new(SELF_EXITING).unwrap();
        prop_assert_eq!(exits_by_itself(&command), re.is_match(&command), "{:?}", command);
    }

    #[test]
    fn the_check_and_its_regex_agree(command in "[a '\"\\\\#\n;]{0,12}") {
        let re = regex::Regex::new(CLOSED_QUOTING).unwrap();
        prop_assert_eq!(quoting_closed(&command), re.is_match(&command), "{:?}", command);
    }
}

/// The API server drops a warning with a control character: a command's
/// newlines and tabs are escaped where a warning or the audit summary shows
/// it, never in the hook that runs it.
#[test]
fn a_command_is_shown_without_control_characters() {
    let hook = Hook::Shell {
        delay: 3,
        command: Some(("echo a\n\techo b\r".to_string(), 30)),
    };
    assert_eq!(
        hook.describe(),
        "sleep 3s; echo a\\n\\techo b\\r; sleep 30s"
    );
    assert_eq!(hook.argv()[4], "echo a\n\techo b\r");
}
